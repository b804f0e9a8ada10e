#!/usr/bin/env bash
# Creates the git-ignored secret files of an overlay from the committed examples.
#
#   bash deploy/k8s/init-secrets.sh local
#
# For each overlays/<overlay>/secrets/<name>.example without a <name> next to it:
#   *.env.example  -> copied as is (the local examples hold development-only values)
#   *.pem.example  -> a fresh Ed25519 private key is generated instead (openssl, or the
#                     Python `cryptography` package of the project's environment)
# Existing files are never touched, so it is safe to run again.
#
# The production overlay is refused on purpose: its secrets are real credentials that the
# platform team writes (or syncs from a secret manager), never copies of placeholders.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
overlay="${1:-local}"
secrets="$ROOT/deploy/k8s/overlays/$overlay/secrets"

[ "$overlay" != production ] || {
    echo "init-secrets: production secrets are written by hand from the examples (docs/deploy.md)" >&2
    exit 1
}
[ -d "$secrets" ] || { echo "init-secrets: no such overlay: $overlay" >&2; exit 1; }

generate_ed25519() { # generate_ed25519 FILE
    if command -v openssl >/dev/null 2>&1 && openssl genpkey -algorithm ed25519 -out "$1" 2>/dev/null; then
        return
    fi
    (cd "$ROOT" && uv run --frozen python -c '
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
pem = Ed25519PrivateKey.generate().private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
open(sys.argv[1], "wb").write(pem)
' "$1")
}

umask 077
for example in "$secrets"/*.example; do
    target="${example%.example}"
    name="$(basename "$target")"
    if [ -e "$target" ]; then
        echo "init-secrets: keep     $name"
    elif [[ "$name" == *.pem ]]; then
        generate_ed25519 "$target"
        echo "init-secrets: generate $name (new Ed25519 signing key)"
    else
        cp "$example" "$target"
        echo "init-secrets: copy     $name"
    fi
done
