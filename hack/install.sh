#!/usr/bin/env bash
# Installs this skiff release on a node (run from the unpacked tarball, as root):
#   ./install.sh [--prefix DIR] [--root DIR] [--no-start]
#   --prefix  where the release goes (default /usr/local/lib/skiff); skiffd and skiff are
#             linked into <prefix>/../../bin (/usr/local/bin)
#   --root    install under this directory instead of / (packaging, tests); implies --no-start
#   --no-start  install the systemd unit but do not enable or start it
# Needs Node.js 20 or newer on PATH (or the release's own node/bin/node), and CNI plugins in /opt/cni/bin or /usr/lib/cni
# (Debian: containernetworking-plugins) for pod networking. Keeps an existing
# /etc/skiff/config.toml. uninstall.sh takes it all back.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local/lib/skiff
destroot=
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --root) destroot=$(realpath -m "$2"); start=0; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
node=node
[ -x "$here/node/bin/node" ] && node="$here/node/bin/node"
if ! command -v "$node" >/dev/null || [ "$("$node" -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "install.sh: skiff needs Node.js 20 or newer on PATH (or in node/bin/node of the release)" >&2
  exit 1
fi
bindir=$(dirname "$(dirname "$prefix")")/bin
lib="$destroot$prefix"

mkdir -p "$(dirname "$lib")" "$destroot$bindir" "$destroot/etc/skiff" "$destroot/etc/systemd/system"
rm -rf "$lib.new"
cp -a "$here" "$lib.new"
rm -f "$lib.new/install.sh"
# Swap in the new release whole, so a running skiffd never sees a half-copied tree.
if [ -d "$lib" ]; then rm -rf "$lib.old"; mv "$lib" "$lib.old"; fi
mv "$lib.new" "$lib"
rm -rf "$lib.old"
ln -sfn "$prefix/bin/skiffd" "$destroot$bindir/skiffd"
ln -sfn "$prefix/bin/skiff" "$destroot$bindir/skiff"
[ -e "$destroot/etc/skiff/config.toml" ] || install -m 0644 "$here/config.toml.example" "$destroot/etc/skiff/config.toml"
sed "s#/usr/local/lib/skiff/bin/skiffd#$prefix/bin/skiffd#" "$here/deploy/systemd/skiff.service" > "$destroot/etc/systemd/system/skiff.service"
echo "skiff: installed in $lib; unit $destroot/etc/systemd/system/skiff.service"
if [ "$start" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now skiff.service
  echo "skiff: started (point kubelet at unix:///run/skiff/skiff.sock: see $prefix/deploy/kubelet)"
fi
