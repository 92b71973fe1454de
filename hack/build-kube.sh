#!/usr/bin/env bash
# Builds Kubernetes binaries from Debian's `kubernetes` source package (bookworm: v1.20.2)
# with Debian's golang-1.19 in GOPATH mode, for the kubelet end-to-end tests. The result
# is cached: a second run with the binaries present does nothing.
#   hack/build-kube.sh [component...]     (default: kubelet)
# Binaries land in $SKIFF_KUBE_CACHE/bin (default /var/cache/skiff/kube/bin).
set -euo pipefail
CACHE=${SKIFF_KUBE_CACHE:-/var/cache/skiff/kube}
COMPONENTS=("${@:-kubelet}")
missing=()
for c in "${COMPONENTS[@]}"; do [ -x "$CACHE/bin/$c" ] || missing+=("$c"); done
[ ${#missing[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
if ! ls /etc/apt/sources.list.d/skiff-deb-src.sources >/dev/null 2>&1; then
  cat > /etc/apt/sources.list.d/skiff-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
fi
if [ ! -x /usr/lib/go-1.19/bin/go ] || ! command -v dpkg-source >/dev/null; then
  apt-get install -y -qq --no-install-recommends golang-1.19-go dpkg-dev >/dev/null
fi

mkdir -p "$CACHE/src" "$CACHE/bin"
GOPATH="$CACHE/gopath"
SRC_DIR="$GOPATH/src/k8s.io/kubernetes"
if [ ! -d "$SRC_DIR" ]; then
  (cd "$CACHE/src" && apt-get source -qq kubernetes >/dev/null)
  tree=$(find "$CACHE/src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)
  mkdir -p "$(dirname "$SRC_DIR")"
  mv "$tree" "$SRC_DIR"
fi
cd "$SRC_DIR"
export GOPATH GO111MODULE=off GOFLAGS= CGO_ENABLED=1 GOCACHE="$CACHE/gocache"
export PATH=/usr/lib/go-1.19/bin:$PATH
for c in "${missing[@]}"; do
  echo "building $c (GOPATH mode, go $(go env GOVERSION))" >&2
  # The version kubelet reports (GOPATH builds carry none of their own).
  v=k8s.io/kubernetes/vendor/k8s.io/component-base/version
  go build -ldflags "-X $v.gitVersion=v1.20.2 -X $v.gitMajor=1 -X $v.gitMinor=20" -o "$CACHE/bin/$c.tmp" "./cmd/$c"
  mv "$CACHE/bin/$c.tmp" "$CACHE/bin/$c"
done
