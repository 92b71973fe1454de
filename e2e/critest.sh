#!/usr/bin/env bash
# Runs the critest found on $PATH (kubernetes-sigs/cri-tools; not part of skiff) against
# a throwaway skiffd: builds critest's test images from Debian's busybox, serves them from
# a loopback registry behind mirrors for registry.k8s.io, gcr.io and docker.io, runs the
# suite, prints passed/failed/skipped, the failed specs and the JUnit report's path
# ($CRITEST_JUNIT, default /tmp/skiff-critest-junit.xml). Extra arguments go to critest,
# e.g. e2e/critest.sh --ginkgo.focus='Container'. Needs root and a built tree (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v critest >/dev/null; then
  echo "e2e/critest.sh: no critest on \$PATH (build it from kubernetes-sigs/cri-tools, tag v1.32.0)" >&2
  exit 2
fi
[ -f dist/e2e/critest/run.js ] || npm run build
exec node dist/e2e/critest/run.js --critest "$(command -v critest)" "$@"
