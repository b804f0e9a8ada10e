#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests (`make k8s-validate`, also part of `make test`).
#
#   1. installs kustomize (pinned, through the Go module proxy) into .local/bin if missing;
#   2. renders every overlay with `kustomize build`;
#   3. validates every rendered object against the Kubernetes OpenAPI schemas of the oldest
#      and the newest Kubernetes version we support, offline, with kubernetes-validate
#      (strict: unknown fields are errors too);
#   4. runs the policy tests (tests/deploy) over the rendered YAML.
#
# Rendering happens in a scratch copy of deploy/k8s in which every overlay's secrets/ folder
# holds only the committed *.example files, copied into place. So a clean clone renders, and
# real secret files that an operator keeps next to the examples are never read by a check.
#
# Usage:
#   bash deploy/k8s/validate.sh              everything above
#   bash deploy/k8s/validate.sh render NAME  print the rendered YAML of overlays/NAME
#   bash deploy/k8s/validate.sh tools        only install kustomize (prints its path)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S="$ROOT/deploy/k8s"
BIN="$ROOT/.local/bin"
KUSTOMIZE_VERSION="v5.8.1"
KUSTOMIZE="$BIN/kustomize"
GO="${GO:-/usr/local/go/bin/go}"
# Oldest supported (the preStop sleep action is on by default from 1.30) and newest.
K8S_VERSIONS=(1.31.0 1.37.0)
OVERLAYS=(local production)

log() { printf '[k8s-validate] %s\n' "$*" >&2; }
die() { printf '[k8s-validate] ERROR: %s\n' "$*" >&2; exit 1; }

ensure_kustomize() {
    if [ -x "$KUSTOMIZE" ] && [ "$("$KUSTOMIZE" version 2>/dev/null)" = "$KUSTOMIZE_VERSION" ]; then
        return
    fi
    command -v "$GO" >/dev/null 2>&1 || [ -x "$GO" ] || GO="$(command -v go || true)"
    [ -n "$GO" ] || die "Go is needed to install kustomize (looked for /usr/local/go/bin/go and go)"
    log "installing kustomize $KUSTOMIZE_VERSION into $BIN"
    mkdir -p "$BIN"
    GOBIN="$BIN" GOFLAGS=-buildvcs=false "$GO" install \
        "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
    [ "$("$KUSTOMIZE" version)" = "$KUSTOMIZE_VERSION" ] || die "kustomize install failed"
}

# scratch_copy DIR: deploy/k8s copied to DIR/k8s, secrets/ holding only the examples.
scratch_copy() {
    local dir="$1" secrets example
    cp -R "$K8S" "$dir/k8s"
    for secrets in "$dir"/k8s/overlays/*/secrets; do
        [ -d "$secrets" ] || continue
        find "$secrets" -maxdepth 1 -type f ! -name '*.example' ! -name '.gitignore' -delete
        for example in "$secrets"/*.example; do
            [ -e "$example" ] || continue
            cp "$example" "${example%.example}"
        done
    done
}

render() { # render OVERLAY: rendered YAML on stdout
    local overlay="$1" tmp rc=0
    [ -d "$K8S/overlays/$overlay" ] || die "no overlay named $overlay"
    ensure_kustomize
    tmp="$(mktemp -d)"
    scratch_copy "$tmp"
    "$KUSTOMIZE" build "$tmp/k8s/overlays/$overlay" || rc=$?
    rm -rf "$tmp"
    return "$rc"
}

OUT=""
cleanup() { [ -z "$OUT" ] || rm -rf "$OUT"; }
trap cleanup EXIT

validate_all() {
    local out overlay version report
    OUT="$(mktemp -d)"
    out="$OUT"
    ensure_kustomize
    for overlay in "${OVERLAYS[@]}"; do
        log "kustomize build overlays/$overlay"
        render "$overlay" > "$out/$overlay.yaml"
        log "  $(grep -c '^kind:' "$out/$overlay.yaml") objects"
    done

    cd "$ROOT"
    for version in "${K8S_VERSIONS[@]}"; do
        log "schemas of Kubernetes $version (kubernetes-validate --strict)"
        # A kind without a schema is only a warning for the tool; here it is a failure.
        # (The tool reports on stdout; uv's own progress on stderr is passed through.)
        if ! report="$(uv run --frozen kubernetes-validate --strict --quiet -k "$version" \
                "$out"/*.yaml)"; then
            printf '%s\n' "$report" >&2
            die "schema validation failed for Kubernetes $version"
        fi
        if [ -n "$report" ]; then
            printf '%s\n' "$report" >&2
            die "schema validation reported problems for Kubernetes $version"
        fi
    done

    log "policy tests (tests/deploy)"
    uv run --frozen pytest -q -p no:cacheprovider tests/deploy -m deploy
    log "ok"
}

case "${1:-all}" in
    all) validate_all ;;
    render) [ $# -eq 2 ] || die "usage: validate.sh render OVERLAY"; render "$2" ;;
    tools) ensure_kustomize; printf '%s\n' "$KUSTOMIZE" ;;
    *) die "unknown command $1 (all | render OVERLAY | tools)" ;;
esac
