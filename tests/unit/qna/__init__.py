"""Unit tests of the qna domain: the question state machine and the ownership rules."""
