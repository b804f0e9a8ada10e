"""The baselines measured beside the services: a hello-world, the minimal post list, nginx.

Each app runs under uvicorn with the services' own flags (chassis/runner.py: no access log,
no log config, no server header; uvloop and httptools as uvicorn picks them), in a process of
its own: ``python -m benchmarks.bench.baselines hello PORT`` or ``... minimal PORT DSN``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, HTTPException


def hello_app() -> FastAPI:
    """One route, no middleware: what FastAPI and uvicorn cost by themselves."""
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def minimal_app(dsn: str) -> FastAPI:
    """The obvious post list on the same read model: the three queries of board-api's
    ``GET /api/boards/{id}/posts`` (board exists, the page, the live count), one pool."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/boards/{board_id}/posts")
    async def posts(board_id: uuid.UUID, page: int = 1, size: int = 20) -> dict[str, Any]:
        async with app.state.pool.acquire() as db:
            if await db.fetchval("SELECT 1 FROM boards WHERE id = $1", board_id) is None:
                raise HTTPException(404, "board not found")
            rows = await db.fetch(
                "SELECT * FROM post_summaries WHERE board_id = $1 AND NOT deleted"
                " ORDER BY created_at DESC, post_id DESC OFFSET $2 LIMIT $3",
                *(board_id, (page - 1) * size, size),
            )
            total = await db.fetchval(
                "SELECT count(*) FROM post_summaries WHERE board_id = $1 AND NOT deleted",
                board_id,
            )
        items = [
            {
                "id": str(r["post_id"]),
                "board_id": str(r["board_id"]),
                "title": r["title"],
                "author": {"id": str(r["author_id"]), "nickname": r["author_nickname"]},
                "comment_count": r["comment_count"],
                "view_count": r["view_count"],
                "created_at": r["created_at"].isoformat(),
                "updated_at": r["updated_at"].isoformat(),
            }
            for r in rows
        ]
        return {"items": items, "total": total, "page": page, "size": size}

    return app


def serve(app: FastAPI, port: int) -> None:
    """uvicorn with the flags of chassis/runner.py."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run()


def nginx_conf(prefix: Path, port: int, upstream_port: int) -> str:
    """A reverse proxy on ``port`` in front of ``127.0.0.1:upstream_port``: one worker (the
    gateway is one process too), keep-alive connections to the upstream, no access log.
    Every path nginx writes stays under ``prefix``."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"  {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}
  upstream board {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://board;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    serve(hello_app() if kind == "hello" else minimal_app(argv[2]), port)


if __name__ == "__main__":
    main(sys.argv[1:])
