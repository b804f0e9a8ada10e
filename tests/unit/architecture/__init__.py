"""Unit tests: the import contracts that check the architecture."""
