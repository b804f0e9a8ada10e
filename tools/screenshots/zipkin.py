"""Screenshot of a trace in Zipkin's UI, taken in headless Chromium (Playwright, Debian's chromium).

Usage (a Zipkin running, e.g. after ``make observe`` and a saga from ``make demo``)::

    uv run python -m tools.screenshots.zipkin                  # the newest answer acceptance
    uv run python -m tools.screenshots.zipkin --trace <id>     # one trace, by its id
    uv run python -m tools.screenshots.zipkin --zipkin http://127.0.0.1:9411 \\
        --out docs/screenshots/zipkin-acceptance-trace.png

The trace id is the ``trace_id`` of any log line of the request (32 hex digits). Without
``--trace``, the newest trace of the last hour whose gateway span is an answer acceptance
(``POST /api/questions/{qid}/answers/{aid}/accept``) is taken. ``CHROMIUM_EXECUTABLE`` names
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
#: Wide enough for the span names, tall enough for a whole saga's spans.
VIEWPORT = {"width": 1600, "height": 1300}


async def newest_acceptance(http: httpx.AsyncClient, zipkin: str) -> str:
    """The id of the newest trace of the last hour with a gateway span for an accept request."""
    response = await http.get(
        f"{zipkin}/api/v2/traces",
        params={"serviceName": "gateway", "lookback": 3_600_000, "limit": 100},
    )
    response.raise_for_status()
    traces: list[list[dict[str, Any]]] = response.json()
    found: list[tuple[int, str]] = [
        (int(span.get("timestamp", 0)), str(span["traceId"]))
        for spans in traces
        for span in spans
        if span.get("localEndpoint", {}).get("serviceName") == "gateway"
        and span.get("kind") == "SERVER"
        and span.get("name", "").endswith("/accept")
    ]
    if not found:
        raise SystemExit(f"no answer-acceptance trace in {zipkin} in the last hour: run a saga")
    return max(found)[1]


async def capture(zipkin: str, trace_id: str, out: Path) -> None:
    """Open ``{zipkin}/zipkin/traces/{trace_id}`` and save the page as a PNG at ``out``."""
    executable = os.environ.get("CHROMIUM_EXECUTABLE") or DEFAULT_CHROMIUM
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            await page.goto(f"{zipkin}/zipkin/traces/{trace_id}", wait_until="networkidle")
            # the span rows are drawn once the trace has arrived
            await page.get_by_text("accept").first.wait_for(timeout=30_000)
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out))
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
    await capture(zipkin, trace_id, args.out)
    print(f"trace {trace_id}: {args.out}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
