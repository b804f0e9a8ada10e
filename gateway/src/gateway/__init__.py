"""API gateway: the single entry point in front of the member, board, qna and saga services."""
