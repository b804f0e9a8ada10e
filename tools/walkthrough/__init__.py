"""Failure walkthroughs: one command each (`make walkthrough NAME=...`) that injects a fault into a running `make run` stack, narrates it, shows where to look and checks the outcome.

The faults come from the fault suite's tooling (tools/chaos). One module per walkthrough:
``kill_worker``, ``fail_saga_step``, ``stop_kafka``, ``roll_deployment``,
``replay_read_model``; ``python -m tools.walkthrough --help`` lists them.
"""
