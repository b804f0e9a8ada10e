"""System tests of the sagas: every participant and the orchestrator as real processes."""
