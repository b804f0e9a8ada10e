#!/usr/bin/env bash
# Builds the control plane of `make k8s-apiserver-test` from source, or reuses a cached build:
# etcd, kube-apiserver, kube-controller-manager and kubectl at the versions go.mod pins.
#
# Everything lands under .local/k8s/ of the repository, so a clean clone rebuilds and a second
# run is a no-op:
#   .local/k8s/bin/<kubernetes version>/   the four binaries and a stamp (hash of go.mod, go.sum,
#                                          the Go version and the build flags)
#   .local/k8s/go/mod, .local/k8s/go/cache the Go module and build caches (GOMODCACHE, GOCACHE)
# The caches are the checkout's own, not the user's ~/go: a clean clone or another worktree
# downloads and compiles everything again (on purpose: nothing outside the checkout is touched,
# and rm -rf .local/k8s undoes it all). Only the Go module proxy is used (no container
# registry, no release tarballs). A cold build takes about 12.5 minutes on 2 cores, and 2.6 GB
# of memory in its largest process (kube-apiserver; docs/deploy.md "Validation" has the
# figures). A rebuild with the Go build cache only relinks. Progress: one line per binary on
# stderr, with its time.
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
export GOMODCACHE="$ROOT/.local/k8s/go/mod" GOCACHE="$ROOT/.local/k8s/go/cache"
# GOTOOLCHAIN=auto: the installed Go when it is at least go.mod's `go` line (the release's own
# minimum), else that Go release, downloaded once through the module proxy into GOMODCACHE.
# -modcacherw: the module cache stays deletable with rm -rf (Go makes it read-only otherwise).
export GOTOOLCHAIN=auto GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0

# What the binaries are made of: another module graph, Go release or flag set rebuilds them.
# `go version` inside the module names the toolchain that builds them.
want="$( { cat "$HERE/go.mod" "$HERE/go.sum"; (cd "$HERE" && "$GO" version); echo "$ldflags"; } \
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

mkdir -p "$OUT" "$GOMODCACHE" "$GOCACHE"
rm -f "$STAMP"

build() { # build NAME PACKAGE
    local name="$1" pkg="$2" start
    start=$SECONDS
    step=$((step + 1))
    log "[$step/${#BINARIES[@]}] building $name ($pkg)"
    (cd "$HERE" && "$GO" build -trimpath -ldflags "$ldflags" -o "$OUT/$name.tmp" "$pkg")
    mv "$OUT/$name.tmp" "$OUT/$name"
    log "built $name in $((SECONDS - start)) s"
}

total=$SECONDS
step=0
(cd "$HERE" && "$GO" version) >&2
# One at a time: kube-apiserver alone takes about 2 GB while compiling and linking.
build etcd go.etcd.io/etcd/server/v3
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
echo "$want" > "$STAMP"
log "all built in $((SECONDS - total)) s: $OUT"
echo "$OUT"
