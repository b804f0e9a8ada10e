"""Domain model of the member context: pure Python, standard library only."""
