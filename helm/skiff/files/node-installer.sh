#!/bin/sh
# skiff's node installer, run by the chart's DaemonSet in a privileged pod with the host's
# PID namespace and the host's / at $HOST (default /host).
#   node-installer.sh install    install or upgrade skiff, point kubelet at it, then sleep
#   node-installer.sh uninstall  (preStop) hand the revert to a transient systemd unit on
#                                the host: stop kubelet, remove skiff's pods, the kubelet
#                                drop-in and skiff, start kubelet on its former runtime
# Idempotent: after kubelet restarts on skiff this pod is recreated on skiff, finds the
# node set up, and only sleeps. Environment: SKIFF_CONFIG (config.toml for a node that has
# none), KUBELET_CONFIGURE (true|false), KUBELET_DROPIN (path), METRICS_ADDRESS.
set -eu
HOST=${HOST:-/host}
TARBALL=${TARBALL:-/opt/skiff/skiff.tar.gz}
PREFIX=/usr/local/lib/skiff
STAGE=/var/lib/skiff-installer
SOCKET=unix:///run/skiff/skiff.sock
log() { echo "skiff-installer: $*"; }
host() { nsenter --target 1 --mount --uts --ipc --net --pid -- "$@"; }

dropin_text() {
  cat <<DROPIN
# Written by the skiff chart's installer; removed when the chart is uninstalled.
[Unit]
After=skiff.service
Requires=skiff.service

[Service]
Environment="KUBELET_EXTRA_ARGS=--container-runtime-endpoint=$SOCKET --image-service-endpoint=$SOCKET --cgroup-driver=cgroupfs"
DROPIN
}

install() {
  release=$(tar -tzf "$TARBALL" | head -n 1 | cut -d/ -f1)
  [ -n "$release" ] || { log "no release in $TARBALL"; exit 1; }
  mkdir -p "$HOST$STAGE"
  if [ "$(cat "$HOST$STAGE/installed" 2>/dev/null)" != "$release" ]; then
    log "installing $release"
    rm -rf "${HOST:?}$STAGE/$release"
    tar -C "$HOST$STAGE" -xzf "$TARBALL"
    # No Node.js 20+ on the host: the release runs with the one this image carries.
    if ! host sh -c 'command -v node >/dev/null && [ "$(node -p "process.versions.node.split(\".\")[0]")" -ge 20 ]'; then
      mkdir -p "$HOST$STAGE/$release/node/bin"
      cp /opt/skiff/node "$HOST$STAGE/$release/node/bin/node"
    fi
    if [ ! -e "$HOST/etc/skiff/config.toml" ]; then
      mkdir -p "$HOST/etc/skiff"
      { printf '%s\n' "${SKIFF_CONFIG:-}"; [ -z "${METRICS_ADDRESS:-}" ] || printf '\n[metrics]\naddress = "%s"\n' "$METRICS_ADDRESS"; } > "$HOST/etc/skiff/config.toml"
    fi
    host "$STAGE/$release/install.sh" --no-start
    host systemctl daemon-reload
    host systemctl enable skiff.service
    host systemctl restart skiff.service
    echo "$release" > "$HOST$STAGE/installed"
  else
    log "$release already installed"
    host systemctl is-active --quiet skiff.service || host systemctl start skiff.service
  fi
  if [ "${KUBELET_CONFIGURE:-true}" = true ] && [ "$(cat "$HOST$KUBELET_DROPIN" 2>/dev/null)" != "$(dropin_text)" ]; then
    log "pointing kubelet at $SOCKET and restarting it"
    mkdir -p "$(dirname "$HOST$KUBELET_DROPIN")"
    dropin_text > "$HOST$KUBELET_DROPIN"
    host systemctl daemon-reload
    # Delayed and outside this pod: kubelet's restart moves this pod onto skiff.
    host systemd-run --unit skiff-kubelet-restart --collect --on-active=2 systemctl restart kubelet.service
  fi
  touch /tmp/ready
  log "node ready"
}

uninstall() {
  log "reverting the node (transient unit skiff-revert on the host)"
  cat > "$HOST$STAGE/revert.sh" <<REVERT
#!/bin/sh
systemctl stop kubelet.service
rm -f "$KUBELET_DROPIN"
systemctl daemon-reload
for pod in \$($PREFIX/bin/skiff pods -q 2>/dev/null); do $PREFIX/bin/skiff rm -f "\$pod" || true; done
[ -x $PREFIX/uninstall.sh ] && $PREFIX/uninstall.sh
rm -rf $STAGE
systemctl start kubelet.service
REVERT
  chmod 0755 "$HOST$STAGE/revert.sh"
  host systemd-run --unit skiff-revert --collect --on-active=2 "$STAGE/revert.sh"
}

case "${1:-install}" in
  install)
    install
    trap 'exit 0' TERM INT
    while :; do sleep 3600 & wait $!; done
    ;;
  uninstall) uninstall ;;
  *) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
