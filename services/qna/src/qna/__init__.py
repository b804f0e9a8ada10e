"""Q&A service (Q&A관리): questions, answers, comments, the CQRS question list and saga steps."""
