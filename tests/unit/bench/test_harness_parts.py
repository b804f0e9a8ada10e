"""The bench harness's pure parts: wrk output parsing, the open-loop schedule, ratios, goals and
the table (benchmarks/bench; the harness itself is not a test and never runs here)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from benchmarks.bench.figures import histogram_buckets, histogram_quantile
from benchmarks.bench.openloop import run_open_loop, schedule
from benchmarks.bench.procstat import CLOCK_TICKS, parse_stat_cpu, used_between
from benchmarks.bench.report import Figure, Goal, as_json, format_value, percentile, render_table
from benchmarks.bench.wrk import MARKER, parse_wrk_output, wrk_command

WRK_OUTPUT = f"""Running 8s test @ http://127.0.0.1:8002/api/boards/x/posts?page=2
  2 threads and 16 connections
  Latency Distribution
     50%   18.00ms
  6311 requests in 8.00s, 9.1MB read
Requests/sec:    788.87
{MARKER}{{"requests":6311,"duration_us":8000000,"bytes":9500000,"p50_us":18034,"p90_us":25000,"p99_us":41210,"max_us":90500,"mean_us":19876.5,"errors":{{"connect":0,"read":1,"write":0,"status":2,"timeout":0}}}}
"""


def test_parse_wrk_output_reads_the_json_line_among_wrks_text() -> None:
    result = parse_wrk_output(WRK_OUTPUT)
    assert result.requests == 6311
    assert result.rps == pytest.approx(788.875)
    assert result.p50_ms == pytest.approx(18.034)
    assert result.p99_ms == pytest.approx(41.21)
    assert result.max_ms == pytest.approx(90.5)
    assert result.failed == 3


def test_parse_wrk_output_without_the_json_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_command_has_the_fixed_load_shape_and_the_header() -> None:
    argv = wrk_command(
        "http://h/p", __import__("pathlib").Path("/s.lua"), headers={"Authorization": "Bearer t"}
    )
    assert argv[:4] == ["wrk", "-t2", "-c16", "-d8s"]
    assert "--latency" in argv
    assert argv[argv.index("-H") + 1] == "Authorization: Bearer t"
    assert argv[-1] == "http://h/p"


def test_schedule_is_evenly_spaced_at_the_rate() -> None:
    due = schedule(200, 2)
    assert len(due) == 400
    assert due[0] == 0
    assert due[1] == pytest.approx(0.005)
    assert due[-1] == pytest.approx(1.995)
    assert schedule(0, 5) == []
    assert schedule(10, 0) == []


async def test_open_loop_does_not_wait_for_slow_answers_and_times_from_the_due_time() -> None:
    """A stalled first request neither delays the next sends (open loop) nor hides its own
    queueing: latency runs from the due time, so no coordinated omission."""
    started: list[float] = []

    async def call(i: int) -> int:
        started.append(time.time())
        await asyncio.sleep(0.3 if i == 0 else 0)
        return i

    outcomes = await run_open_loop(20, 0.5, call)  # 10 requests, one every 50 ms
    assert [o.value for o in outcomes] == list(range(10))
    assert started[-1] - started[0] < 0.6  # the 0.3 s stall held back nothing
    assert outcomes[0].latency >= 0.29
    assert all(o.ok for o in outcomes)


async def test_open_loop_counts_an_exception_as_a_failed_request() -> None:
    async def call(i: int) -> None:
        if i == 1:
            raise RuntimeError("503")

    outcomes = await run_open_loop(100, 0.03, call)
    assert [o.ok for o in outcomes] == [True, False, True]


def test_ratio_goal_and_met() -> None:
    tax = Figure(
        "P1", "gateway ÷ direct", 600, "req/s", 1000, "direct", goal=Goal(">=", 0.7, "ratio")
    )
    assert tax.resolved_ratio() == pytest.approx(0.6)
    assert tax.met is False
    lag = Figure("P3", "lag p99", 80, "ms", goal=Goal("<=", 100))
    assert lag.resolved_ratio() is None
    assert lag.met is True
    unmeasured = Figure("P4", "max", None, "sagas/s", goal=Goal(">=", 50))
    assert unmeasured.met is None
    assert Figure("P2", "no baseline", 5, "ms", 0).resolved_ratio() is None


def test_render_table_has_one_row_per_figure_with_its_verdict() -> None:
    table = render_table(
        [
            Figure(
                "P2",
                "post list ÷ minimal",
                135,
                "req/s",
                789,
                "minimal",
                goal=Goal(">=", 0.8, "ratio"),
            ),
            Figure("P5", "RSS", 118.4, "MiB", note="board-api"),
        ]
    )
    lines = table.splitlines()
    assert lines[0] == "| figure | measured | baseline | ratio | goal | met |"
    assert lines[2] == (
        "| P2 post list ÷ minimal | 135 req/s | 789 req/s (minimal) | 0.17 | ratio >= 0.8 | **no** |"
    )
    assert lines[3] == "| P5 RSS (board-api) | 118 MiB | — | — | — | — |"


def test_json_carries_the_ratio_and_the_verdict() -> None:
    doc = as_json({"nproc": 2}, [Figure("P4", "max", 60, "sagas/s", goal=Goal(">=", 50))])
    assert doc["machine"] == {"nproc": 2}
    assert doc["figures"][0]["met"] is True
    assert doc["figures"][0]["goal"] == ">= 50 sagas/s"


def test_format_value_and_percentile() -> None:
    assert format_value(6682.4, "req/s") == "6,682 req/s"
    assert format_value(1.234, "ms") == "1.23 ms"
    assert format_value(None, "ms") == "—"
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile(list(range(1, 101)), 99) == 99
    assert math.isnan(percentile([], 50))


def test_cpu_time_from_proc_stat_with_a_command_name_holding_spaces() -> None:
    fields = ["S", *["0"] * 10, str(3 * CLOCK_TICKS), str(CLOCK_TICKS), *["0"] * 30]
    assert parse_stat_cpu(f"123 (a ) b) {' '.join(fields)}") == pytest.approx(4.0)
    assert used_between({1: 1.0, 2: 5.0}, {1: 1.5, 3: 0.25}) == {1: 0.5, 3: 0.25}


def test_event_age_histogram_quantiles_from_two_scrapes() -> None:
    before = histogram_buckets(
        'chassis_event_age_seconds_bucket{group="p",le="0.01"} 10\n'
        'chassis_event_age_seconds_bucket{group="p",le="0.1"} 10\n'
        'chassis_event_age_seconds_bucket{group="p",le="+Inf"} 10\n'
    )
    after = histogram_buckets(
        'chassis_event_age_seconds_bucket{group="p",le="0.01"} 60\n'
        'chassis_event_age_seconds_bucket{group="p",le="0.1"} 109\n'
        'chassis_event_age_seconds_bucket{group="p",le="+Inf"} 110\n'
        "unrelated_total 5\n"
    )
    assert histogram_quantile(before, after, 0.5) == 0.01
    assert histogram_quantile(before, after, 0.99) == 0.1
    assert histogram_quantile(after, after, 0.5) != histogram_quantile(after, after, 0.5)  # NaN
    assert histogram_buckets("nothing here") == {}
