"""Benchmarks: the ``make bench`` harness (``benchmarks.bench``) and per-topic measurement tools."""
