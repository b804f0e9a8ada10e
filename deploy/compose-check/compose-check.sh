#!/usr/bin/env bash
# Builds (when missing or out of date) and runs compose-check: docker-compose.yml loaded and
# validated by compose-go, the library inside `docker compose`, without a Docker engine.
#
#   bash deploy/compose-check/compose-check.sh [-profiles '*'] [-env-file .env.example] [docker-compose.yml]
#
# compose-go comes from the Go module proxy at the version pinned in go.mod/go.sum; the
# binary goes to .local/bin (git-ignored). Prints the resolved project as JSON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/deploy/compose-check"
BIN="$ROOT/.local/bin/compose-check"
GO="${GO:-/usr/local/go/bin/go}"
[ -x "$GO" ] || GO="$(command -v go || true)"

if [ ! -x "$BIN" ] || [ -n "$(find "$SRC" -newer "$BIN" -name '*.go' -o -newer "$BIN" -name 'go.*' | head -1)" ]; then
    [ -n "$GO" ] || { echo "compose-check: Go is needed to build it" >&2; exit 1; }
    mkdir -p "$(dirname "$BIN")"
    (cd "$SRC" && GOFLAGS=-buildvcs=false "$GO" build -trimpath -o "$BIN" .) >&2
fi
cd "$ROOT"
exec "$BIN" "$@"
