"""Domain: the Q&A model in plain Python (standard library only)."""
