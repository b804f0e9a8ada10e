"""Domain model of the board service: standard library only."""
