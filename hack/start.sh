#!/usr/bin/env bash
# Starts skiffd in the foreground with working defaults (socket /run/skiff/skiff.sock);
# flags pass through, e.g. `npm start -- --log_level debug`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/skiffd "$@"
