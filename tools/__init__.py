"""Development tools: checks that run with `make lint`, not in any deployable."""
