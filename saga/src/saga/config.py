"""Externalized configuration: the saga orchestrator's settings, all from the environment."""

from __future__ import annotations

from pydantic import Field

from chassis.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    """Settings of `saga api` and `saga worker`."""

    SERVICE_NAME: str = "saga"
    HTTP_PORT: int = 8004
    WORKER_PORT: int = 9104
    DATABASE_URL: str

    #: qna's internal API, asked synchronously before an answer-acceptance saga starts.
    QNA_URL: str = "http://127.0.0.1:8003"
    QNA_TIMEOUT_SECONDS: float = Field(default=3.0, gt=0)

    #: How long a step may wait for its reply before it counts as failed. It must outlast a
    #: participant restart (a Kafka consumer-group rebalance takes up to its session timeout).
    STEP_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    #: A refused compensation is tried this many times before the saga becomes FAILED (a silent
    #: one is re-sent without limit, like a pivot).
    COMPENSATION_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    COMPENSATION_RETRY_SECONDS: float = Field(default=1.0, ge=0)
    #: At or after the pivot a timeout re-sends the command; each re-send doubles the step's
    #: deadline (from STEP_TIMEOUT_SECONDS) up to this cap. There is no limit on re-sends.
    RESEND_TIMEOUT_CAP_SECONDS: float = Field(default=300.0, gt=0)
    #: A refused retriable step is tried again after this wait, doubling up to the cap ...
    RETRY_BACKOFF_SECONDS: float = Field(default=1.0, ge=0)
    RETRY_BACKOFF_CAP_SECONDS: float = Field(default=60.0, ge=0)
    #: ... this many attempts in all; then the saga is FAILED and the next attempt is parked in
    #: the participant's command DLQ (about 16 minutes with the defaults).
    RETRIABLE_MAX_ATTEMPTS: int = Field(default=20, ge=1)
    #: The longest the worker's deadline sweeper sleeps: it wakes at the next deadline it knows
    #: of, or sooner when this worker writes a sooner one, but a deadline written by another
    #: process is seen at most this late. Keep it at most RETRY_BACKOFF_SECONDS.
    SWEEP_INTERVAL_SECONDS: float = Field(default=1.0, gt=0)
    #: The same while no saga has a deadline (none in flight): the next deadline can only come
    #: from a saga start, a step timeout ahead, so the sweeper sleeps up to this long, never
    #: more than STEP_TIMEOUT_SECONDS (saga.sweeper). Never below SWEEP_INTERVAL_SECONDS.
    SWEEP_IDLE_INTERVAL_SECONDS: float = Field(default=5.0, gt=0)
    #: How often the saga_in_flight gauge is refreshed from the database: as often as
    #: Prometheus scrapes it (deploy/observability/prometheus.yml), more would go unread.
    IN_FLIGHT_REFRESH_SECONDS: float = Field(default=10.0, gt=0)
