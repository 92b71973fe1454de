#!/usr/bin/env bash
# Takes back what install.sh did: stops and removes the unit, the links and the release.
#   ./uninstall.sh [--prefix DIR] [--root DIR] [--purge]
#   --purge  also removes /etc/skiff and skiff's state (/var/lib/skiff); stop the pods first
# Pods keep running until removed: stopping skiff does not stop their shims.
set -euo pipefail
prefix=/usr/local/lib/skiff
destroot=
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --root) destroot=$(realpath -m "$2"); shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bindir=$(dirname "$(dirname "$prefix")")/bin
if [ -z "$destroot" ] && [ -d /run/systemd/system ] && systemctl list-unit-files skiff.service >/dev/null 2>&1; then
  systemctl disable --now skiff.service || true
fi
rm -f "$destroot/etc/systemd/system/skiff.service"
[ -z "$destroot" ] && [ -d /run/systemd/system ] && systemctl daemon-reload || true
for l in skiffd skiff; do
  [ -L "$destroot$bindir/$l" ] && rm -f "$destroot$bindir/$l"
done
rm -rf "$destroot$prefix"
if [ "$purge" = 1 ]; then
  rm -rf "$destroot/etc/skiff" "$destroot/var/lib/skiff"
fi
echo "skiff: removed from ${destroot:-/}"
