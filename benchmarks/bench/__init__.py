"""The ``make bench`` harness: the system's capacity figures beside baselines, measured in one run.

Run it with ``make bench`` or ``python -m benchmarks.bench [--only P1,P2] [--quick] [--json F]``
(from the repository root, with ``deploy/local/local.env`` exported). It starts everything it
measures on the shared local infrastructure, isolated from its other users (databases, topic
prefix, Redis database and ports of its own), and prints one table: figure | measured |
baseline | ratio | goal | met. docs/performance.md explains each figure.
"""
