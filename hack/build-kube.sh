#!/usr/bin/env bash
# Builds Kubernetes binaries from Debian's `kubernetes` source package (bookworm: v1.20.2)
# with Debian's golang-1.19 in GOPATH mode, for the kubelet and cluster end-to-end tests.
# The result is cached: a second run with the binaries present does nothing.
#   hack/build-kube.sh [component...]     (default: kubelet; npm test builds kubelet,
#                                          kube-apiserver, kube-controller-manager,
#                                          kube-scheduler and kubectl)
# Binaries land in $SKIFF_KUBE_CACHE/bin (default /var/cache/skiff/kube/bin).
set -euo pipefail
CACHE=${SKIFF_KUBE_CACHE:-/var/cache/skiff/kube}
COMPONENTS=("${@:-kubelet}")
missing=()
for c in "${COMPONENTS[@]}"; do [ -x "$CACHE/bin/$c" ] || missing+=("$c"); done
need_etcd=
[[ " ${COMPONENTS[*]} " == *" kube-apiserver "* ]] && [ ! -x /usr/bin/etcd ] && need_etcd=1
[ ${#missing[@]} -eq 0 ] && [ -z "$need_etcd" ] && exit 0

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

# The cluster suite runs Debian's etcd as a process of its own: the package's service is
# neither started nor enabled.
if [ -n "$need_etcd" ]; then
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy && made_policy=1; fi
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  [ -n "$made_policy" ] && rm -f $policy
  command -v deb-systemd-helper >/dev/null && deb-systemd-helper disable etcd.service >/dev/null 2>&1 || true
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
# kube-apiserver needs the OpenAPI definitions the release build generates (`make
# generated_files`); Debian's source has every other generated file. openapi-gen comes
# from the vendored kube-openapi; its inputs are the packages tagged +k8s:openapi-gen, as
# build/root/Makefile.generated_files finds them for the KUBE target.
if [[ " ${missing[*]} " == *" kube-apiserver "* ]] && [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  echo "generating pkg/generated/openapi" >&2
  go build -o "$CACHE/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  inputs=$( (grep -rl --include='*.go' '+k8s:openapi-gen=' pkg cmd plugin || true
    find -L vendor/k8s.io -name '*.go' ! -name '*_test.go' ! -path '*/code-generator/*' ! -path '*/sample-apiserver/*' -print0 |
      xargs -0 grep -l '+k8s:openapi-gen=') | grep -v '_test\.go$' | xargs -n1 dirname | LC_ALL=C sort -u | sed 's#^#k8s.io/kubernetes/#' | paste -sd,)
  "$CACHE/bin/openapi-gen" --logtostderr -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$CACHE/openapi-violations.report"
fi
for c in "${missing[@]+"${missing[@]}"}"; do
  echo "building $c (GOPATH mode, go $(go env GOVERSION))" >&2
  # The version kubelet reports (GOPATH builds carry none of their own).
  v=k8s.io/kubernetes/vendor/k8s.io/component-base/version
  go build -ldflags "-X $v.gitVersion=v1.20.2 -X $v.gitMajor=1 -X $v.gitMinor=20" -o "$CACHE/bin/$c.tmp" "./cmd/$c"
  mv "$CACHE/bin/$c.tmp" "$CACHE/bin/$c"
done
