"""Saga orchestrator: member withdrawal and answer acceptance across member, board and qna (see docs/sagas.md)."""
