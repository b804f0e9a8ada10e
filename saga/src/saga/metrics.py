"""Application metrics: how many sagas start, end in each way, how long they take, how many are in flight or stuck past their deadline, how often steps are retried."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SAGA_STARTED = Counter("saga_started_total", "Sagas started.", ["type"])
SAGA_COMPLETED = Counter("saga_completed_total", "Sagas that completed every step.", ["type"])
SAGA_COMPENSATED = Counter(
    "saga_compensated_total", "Sagas that failed a step and undid every completed one.", ["type"]
)
SAGA_FAILED = Counter(
    "saga_failed_total",
    "Sagas whose compensation could not be applied after its retries (an operator is needed).",
    ["type"],
)
SAGA_DURATION = Histogram(
    "saga_duration_seconds",
    "Time from a saga's start to its end, by the state it ended in.",
    ["type", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
SAGA_IN_FLIGHT = Gauge(
    "saga_in_flight",
    "Sagas RUNNING or COMPENSATING, read from the database (each worker replica reports it).",
    ["type"],
)

SAGA_OVERDUE = Gauge(
    "saga_overdue",
    "Sagas RUNNING or COMPENSATING whose deadline passed more than OVERDUE_AFTER_SECONDS ago: the "
    "deadline sweeper acts within about a second, so these are stuck (alert SagaPastDeadline).",
    ["type"],
)
#: How long past its deadline an in-flight saga counts as overdue: far above the sweeper's
#: interval (SWEEP_INTERVAL_SECONDS, 1 s) and a slow sweep, so only a saga no sweep moves on.
OVERDUE_AFTER_SECONDS = 60.0

SAGA_STEP_RETRIES = Counter(
    "saga_step_retries_total",
    "Commands sent again: a forward command re-sent after a timeout at or after the pivot, or a "
    "compensation re-sent after a timeout (reason 'timeout'), or a new attempt after a "
    "retriable step was refused ('refused').",
    ["saga_type", "step", "reason"],
)


def register_types(types: list[str]) -> None:
    """Create every series at zero, so a dashboard shows 0 rather than nothing."""
    for saga_type in types:
        for counter in (SAGA_STARTED, SAGA_COMPLETED, SAGA_COMPENSATED, SAGA_FAILED):
            counter.labels(saga_type)
        SAGA_IN_FLIGHT.labels(saga_type)
        SAGA_OVERDUE.labels(saga_type)
