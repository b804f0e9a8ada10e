"""Screenshot of a trace in Zipkin's UI, taken in headless Chromium (Playwright, Debian's chromium).

Usage (a Zipkin running, e.g. after ``make observe`` and a saga from ``make demo``)::

    uv run python -m tools.screenshots.zipkin                  # the newest answer acceptance
    uv run python -m tools.screenshots.zipkin --trace <id>     # one trace, by its id
    uv run python -m tools.screenshots.zipkin --zipkin http://127.0.0.1:9411 \\
        --out docs/screenshots/zipkin-acceptance-trace.png

The trace id is the ``trace_id`` of any log line of the request (32 hex digits). Without
``--trace``, the newest trace of the last hour whose gateway span is an answer acceptance
(``POST /api/questions/{qid}/answers/{aid}/accept``, found by Zipkin's span-name filter) is
taken. The picture holds the whole saga: the rows of SQL statements (three in four spans) are
hidden, the others stacked. ``CHROMIUM_EXECUTABLE`` names
another Chromium binary (default: Debian's /usr/lib/chromium/chromium, as the browser tests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ZIPKIN = "http://127.0.0.1:9411"
DEFAULT_OUT = REPO / "docs" / "screenshots" / "zipkin-acceptance-trace.png"
DEFAULT_CHROMIUM = "/usr/lib/chromium/chromium"
#: The gateway's service name (``OTEL_SERVICE_NAME`` under ``make run``, compose and Kubernetes).
GATEWAY_SERVICE = "gateway"
#: The gateway's server span of an answer acceptance: named after the route template
#: (gateway/src/gateway/proxy.py), lower case as Zipkin stores span names.
ACCEPT_SPAN = "post /api/questions/{qid}/answers/{aid}/accept"
#: Wide enough for the span names. The page lists the spans in a virtual list as tall as the
#: window: a window this tall draws every row of a saga's trace (about 170 of 30 px), and the
#: picture is then cut to the rows left once the SQL statements are hidden.
VIEWPORT = {"width": 1600, "height": 6400}
#: Span names of SQL statements (instrument_engine in libs/chassis/src/chassis/tracing.py):
#: about three in four spans of a saga, hidden in the picture so that the whole saga fits.
SQL_SPANS = (
    "select|insert|update|delete|with|notify|connect|begin|commit|rollback|savepoint|release"
)
#: Hides the rows of SQL spans in Zipkin's trace timeline and stacks the rest; returns the
#: bottom of the last row (page pixels) and how many rows are left. Rows are absolutely placed
#: 30 px apart in the list's inner box (Zipkin 3's UI).
HIDE_SQL_ROWS = """(sqlNames) => {
  const sql = new RegExp(`^[^:]+: (${sqlNames})$`);
  const labels = [...document.querySelectorAll("div")].filter(
    (e) => e.childElementCount === 0 && /^[\\w.-]+: /.test(e.textContent.trim()));
  const rows = new Set();
  let inner = null;
  for (const label of labels) {
    let row = label;
    while (row && !(row.style && row.style.position === "absolute" && row.style.top)) {
      row = row.parentElement;
    }
    if (!row) continue;
    inner = row.parentElement;
    rows.add(row);
  }
  const ordered = [...rows].sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
  let top = 0;
  let shown = 0;
  for (const row of ordered) {
    const name = [...row.querySelectorAll("div")].find(
      (e) => e.childElementCount === 0 && /^[\\w.-]+: /.test(e.textContent.trim()));
    if (name && sql.test(name.textContent.trim())) {
      row.style.display = "none";
      continue;
    }
    row.style.top = `${top}px`;
    top += parseFloat(row.style.height) || 30;
    shown += 1;
  }
  inner.style.height = `${top}px`;
  inner.parentElement.style.height = `${top}px`;
  const box = inner.getBoundingClientRect();
  return { bottom: box.top + window.scrollY + top, shown, total: ordered.length };
}"""


def newest_trace(traces: list[list[dict[str, Any]]], service: str, span_name: str) -> str | None:
    """The id of the newest trace holding a server span ``span_name`` of ``service``, by that
    span's start; None when there is none. ``traces`` is Zipkin's ``GET /api/v2/traces``
    answer: a list of traces, each a list of spans (JSON v2)."""
    found = [
        (int(span.get("timestamp", 0)), str(span["traceId"]))
        for spans in traces
        for span in spans
        if span.get("localEndpoint", {}).get("serviceName") == service
        and span.get("kind") == "SERVER"
        and span.get("name") == span_name
    ]
    return max(found)[1] if found else None


async def newest_acceptance(http: httpx.AsyncClient, zipkin: str) -> str:
    """The id of the newest answer-acceptance trace of the last hour.

    Zipkin filters by service and span name itself (``serviceName`` and ``spanName`` of
    ``GET /api/v2/traces``), so other traffic, however much, cannot push the acceptance out
    of the answer. Raises ``SystemExit`` when there is none."""
    response = await http.get(
        f"{zipkin}/api/v2/traces",
        params={
            "serviceName": GATEWAY_SERVICE,
            "spanName": ACCEPT_SPAN,
            "lookback": 3_600_000,
            "limit": 10,
        },
    )
    response.raise_for_status()
    trace_id = newest_trace(response.json(), GATEWAY_SERVICE, ACCEPT_SPAN)
    if trace_id is None:
        raise SystemExit(f"no answer-acceptance trace in {zipkin} in the last hour: run a saga")
    return trace_id


async def capture(zipkin: str, trace_id: str, out: Path) -> tuple[int, int]:
    """Open ``{zipkin}/zipkin/traces/{trace_id}``, hide the SQL statement rows and save the
    whole timeline as a PNG at ``out``; returns (rows shown, rows in the trace)."""
    executable = os.environ.get("CHROMIUM_EXECUTABLE") or DEFAULT_CHROMIUM
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            await page.goto(f"{zipkin}/zipkin/traces/{trace_id}", wait_until="networkidle")
            # the span rows are drawn once the trace has arrived
            await page.get_by_text("accept").first.wait_for(timeout=30_000)
            drawn = await page.evaluate(HIDE_SQL_ROWS, SQL_SPANS)
            out.parent.mkdir(parents=True, exist_ok=True)
            height = int(drawn["bottom"]) + 12
            await page.screenshot(
                path=str(out), clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}
            )
            return int(drawn["shown"]), int(drawn["total"])
        finally:
            await browser.close()


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots.zipkin", description=__doc__)
    parser.add_argument("--zipkin", default=DEFAULT_ZIPKIN, help="Zipkin's base URL")
    parser.add_argument("--trace", help="the trace id (default: the newest answer acceptance)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PNG to write")
    args = parser.parse_args(argv)
    zipkin = args.zipkin.rstrip("/")
    async with httpx.AsyncClient(timeout=10) as http:
        trace_id = args.trace or await newest_acceptance(http, zipkin)
    shown, total = await capture(zipkin, trace_id, args.out)
    print(f"trace {trace_id}: {args.out} ({shown} of {total} spans; the SQL statements hidden)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
