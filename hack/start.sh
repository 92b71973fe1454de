#!/usr/bin/env bash
# Starts skiffd with working defaults once it is built (issue 4: the CRI
# server). Until then this says so instead of pretending to run a daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f dist/src/skiffd.js ]; then
  exec node dist/src/skiffd.js "$@"
fi
echo "skiff: the shim is built at shim/build/skiff-shim; skiffd (the CRI daemon) is not written yet." >&2
echo "skiff: see README.md, 'Status'." >&2
exit 1
