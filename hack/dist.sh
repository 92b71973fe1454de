#!/usr/bin/env bash
# `npm run dist [-- OUTDIR]`: the release tarball skiff-<version>-linux-<arch>.tar.gz in
# OUTDIR (default dist-release/). It unpacks to one directory laid out as this checkout
# (the launchers find everything relative to themselves) and runs with the host's Node 20+:
#   bin/skiffd, bin/skiff          launchers (skiffd's Node.js settings, the CLI)
#   dist/src/                      compiled skiffd and CLI, no tests
#   api/                           the proto files skiffd loads
#   shim/build/skiff-shim          the static shim
#   shim/build/skiff-unpack        the layer unpacker (zlib, zstd, libcrypto linked in)
#   node_modules/                  production dependencies only, koffi for this platform only
#   deploy/                        systemd unit, kubelet wiring, RuntimeClass, Grafana dashboard
#   config.toml.example            every key with its default (skiffd --print-config)
#   install.sh, uninstall.sh
# Run after `npm run build` (npm run dist does it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist-release}")
version=$(node -p "require('./package.json').version")
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
name="skiff-${version}-linux-${arch}"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/dist" "$root/shim/build" "$out"

cp -r bin api deploy package.json README.md "$root/"
(cd dist && find src -name "*.js" ! -name "*.test.js" -print0 | xargs -0 cp --parents -t "$root/dist")
install -m 0755 shim/build/skiff-shim "$root/shim/build/skiff-shim"
install -m 0755 shim/build/skiff-unpack "$root/shim/build/skiff-unpack"

# Production dependencies as npm resolved them, copied from node_modules (no network).
npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | while read -r dir; do
  rel=${dir#"$PWD/"}
  mkdir -p "$root/$(dirname "$rel")"
  [ -e "$root/$rel" ] || cp -r "$dir" "$root/$rel"
done
# koffi ships native builds for every platform: keep this one.
koffi_platform="linux_$(node -p 'process.arch')"
find "$root/node_modules/koffi/build/koffi" -mindepth 1 -maxdepth 1 -type d ! -name "$koffi_platform" -exec rm -rf {} +
find "$root/node_modules" -name '*.ts' ! -name '*.d.ts' -delete
find "$root/node_modules" \( -name '*.md' -o -name '*.map' -o -name '*.test.js' \) -delete

node dist/src/skiffd.js --print-config | sed 's/^\([a-z]\)/# \1/' > "$root/config.toml.example"
install -m 0755 hack/install.sh "$root/install.sh"
install -m 0755 hack/uninstall.sh "$root/uninstall.sh"

tar -C "$stage" --owner=0 --group=0 -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
