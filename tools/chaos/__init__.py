"""Fault injection tooling shared by the fault suite (tests/chaos) and the failure walkthroughs (tools/walkthrough).

- ``stack``: the stack acted on (``Target``: ``make run``'s from deploy/local/local.env by
  default), its processes by pid file (SIGKILL, SIGTERM, wait until ready again) and its
  infrastructure servers (stop/start through deploy/local/infra.sh);
- ``load``: writes through the gateway, each request recorded, and the admin API (step
  faults, ``GET /api/sagas/{id}``);
- ``sagas``: the step-kind rules a faulted saga must end by, and saga polling;
- ``readmodel``: read-model rows compared with the write model they are projected from.
"""
