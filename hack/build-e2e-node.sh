#!/usr/bin/env bash
# Builds Kubernetes' node conformance suite, test/e2e_node, from the same Debian source
# that hack/build-kube.sh builds kubelet from (v1.20.2), for `npm run e2e:node`.
# Two things Debian's source needs first:
#  - test/e2e/generated/bindata.go is not shipped: it is generated with the vendored
#    go-bindata over the same inputs as the source's hack/generate-bindata.sh;
#  - the vendored github.com/modern-go/reflect2 v1.0.1 crashes at run time when built with
#    Go >= 1.18; `go test -overlay` swaps in Debian's fixed reflect2 (1.0.2) without
#    touching the tree.
# It also builds agnhost (test/images/agnhost, static), the multi-tool most of the suite's
# pods run, which e2e/node_conformance puts in an image under its upstream name.
# The results are cached: $SKIFF_KUBE_CACHE/bin/e2e_node.test and .../bin/agnhost (default
# /var/cache/skiff/kube).
set -euo pipefail
CACHE=${SKIFF_KUBE_CACHE:-/var/cache/skiff/kube}
OUT="$CACHE/bin/e2e_node.test"
AGNHOST="$CACHE/bin/agnhost"
[ -x "$OUT" ] && [ -x "$AGNHOST" ] && exit 0
cd "$(dirname "$0")/.."
# kubelet first: it fetches and unpacks the source and installs the toolchain.
bash hack/build-kube.sh kubelet
export DEBIAN_FRONTEND=noninteractive
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$REFLECT2" ] || apt-get install -y -qq --no-install-recommends golang-github-modern-go-reflect2-dev >/dev/null

GOPATH="$CACHE/gopath"
SRC_DIR="$GOPATH/src/k8s.io/kubernetes"
cd "$SRC_DIR"
export GOPATH GO111MODULE=off GOFLAGS= CGO_ENABLED=1 GOCACHE="$CACHE/gocache"
export PATH=/usr/lib/go-1.19/bin:$PATH

if [ ! -f test/e2e/generated/bindata.go ]; then
  echo "generating test/e2e/generated/bindata.go" >&2
  go build -o "$CACHE/bin/go-bindata" ./vendor/github.com/go-bindata/go-bindata/go-bindata
  "$CACHE/bin/go-bindata" -nometadata -o test/e2e/generated/bindata.go.tmp -pkg generated \
    -ignore .jpg -ignore .png -ignore .md -ignore 'BUILD(\.bazel)?' \
    test/conformance/testdata/... test/e2e/testing-manifests/... test/e2e_node/testing-manifests/... \
    test/images/... test/fixtures/...
  gofmt -s -w test/e2e/generated/bindata.go.tmp
  mv test/e2e/generated/bindata.go.tmp test/e2e/generated/bindata.go
fi

# The overlay: Debian's reflect2 files in place of the vendored ones; vendored files it lacks removed.
overlay="$CACHE/reflect2-overlay.json"
vend="$SRC_DIR/vendor/github.com/modern-go/reflect2"
{
  printf '{"Replace":{'
  sep=
  for f in "$vend"/*.go "$vend"/*.s; do
    [ -e "$REFLECT2/$(basename "$f")" ] || { printf '%s"%s":""' "$sep" "$f"; sep=,; }
  done
  for f in "$REFLECT2"/*.go "$REFLECT2"/*.s; do printf '%s"%s/%s":"%s"' "$sep" "$vend" "$(basename "$f")" "$f"; sep=,; done
  printf '}}\n'
} > "$overlay"

if [ ! -x "$AGNHOST" ]; then
  echo "building agnhost (static)" >&2
  CGO_ENABLED=0 go build -overlay "$overlay" -ldflags '-s -w' -o "$AGNHOST.tmp" ./test/images/agnhost
  mv "$AGNHOST.tmp" "$AGNHOST"
fi
[ -x "$OUT" ] && exit 0
echo "building e2e_node.test (GOPATH mode, go $(go env GOVERSION))" >&2
v=k8s.io/kubernetes/vendor/k8s.io/component-base/version
go test -c -vet=off -overlay "$overlay" -ldflags "-X $v.gitVersion=v1.20.2 -X $v.gitMajor=1 -X $v.gitMinor=20" -o "$OUT.tmp" ./test/e2e_node
mv "$OUT.tmp" "$OUT"
