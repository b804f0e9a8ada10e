#!/usr/bin/env bash
# Builds the control plane of `make k8s-apiserver-test` from source, or reuses a cached build:
# etcd, kube-apiserver, kube-controller-manager and kubectl at the versions go.mod pins.
#
# Everything lands under .local/k8s/ of the repository, so a clean clone rebuilds and a second
# run is a no-op:
#   .local/k8s/bin/<kubernetes version>/   the four binaries and a stamp (hash of go.mod, go.sum,
#                                          the Go version and the build flags)
#   .local/k8s/go/mod, .local/k8s/go/cache the Go module and build caches (GOMODCACHE, GOCACHE)
# Only the Go module proxy is used (no container registry, no release tarballs). A cold build
# takes 12 minutes or more on 2 cores, and about 2 GB of memory (kube-apiserver is the big one;
# docs/deploy.md "Validation" has the figures). A rebuild with the Go build cache only relinks.
#
# Usage: bash deploy/k8s/apiserver/build.sh     prints the binaries' directory on stdout
# Environment: GO (the go command; default /usr/local/go/bin/go, then go on PATH).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
GO="${GO:-/usr/local/go/bin/go}"
[ -x "$GO" ] || GO="$(command -v go || true)"

log() { printf '[k8s-apiserver build] %s\n' "$*" >&2; }
die() { printf '[k8s-apiserver build] ERROR: %s\n' "$*" >&2; exit 1; }

[ -n "$GO" ] || die "Go is needed (looked for /usr/local/go/bin/go and go on PATH)"

# The release is the one go.mod requires; the version variables below must name it, or the
# server reports v0.0.0-master and kubectl warns about the version skew.
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$HERE/go.mod")"
[[ "$K8S_VERSION" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || die "no k8s.io/kubernetes version in go.mod"
MAJOR="${BASH_REMATCH[1]}"
MINOR="${BASH_REMATCH[2]}"

OUT="$ROOT/.local/k8s/bin/$K8S_VERSION"
STAMP="$OUT/.stamp"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
    ldflags+=" -X $pkg.gitTreeState=clean"
done
# What the binaries are made of: another module graph, Go release or flag set rebuilds them.
want="$( { cat "$HERE/go.mod" "$HERE/go.sum"; "$GO" version; echo "$ldflags"; } \
    | sha256sum | cut -d' ' -f1)"

cached() {
    local b
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] || return 1
    for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done
}

if cached; then
    log "cached: $OUT"
    echo "$OUT"
    exit 0
fi

export GOMODCACHE="$ROOT/.local/k8s/go/mod" GOCACHE="$ROOT/.local/k8s/go/cache"
# GOTOOLCHAIN=local: build with the installed Go, never download another toolchain.
# -modcacherw: the module cache stays deletable with rm -rf (Go makes it read-only otherwise).
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0
mkdir -p "$OUT" "$GOMODCACHE" "$GOCACHE"
rm -f "$STAMP"

build() { # build NAME PACKAGE
    local name="$1" pkg="$2" start
    start=$SECONDS
    log "building $name ($pkg)"
    (cd "$HERE" && "$GO" build -trimpath -ldflags "$ldflags" -o "$OUT/$name.tmp" "$pkg")
    mv "$OUT/$name.tmp" "$OUT/$name"
    log "built $name in $((SECONDS - start)) s"
}

total=$SECONDS
"$GO" version >&2
# One at a time: kube-apiserver alone takes about 2 GB while compiling and linking.
build etcd go.etcd.io/etcd/server/v3
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
echo "$want" > "$STAMP"
log "all built in $((SECONDS - total)) s: $OUT"
echo "$OUT"
