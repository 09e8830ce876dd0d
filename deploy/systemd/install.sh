#!/usr/bin/env bash
# Install crmsync under systemd from this checkout, as root:
#   sudo deploy/systemd/install.sh            # then edit /etc/crmsync/crmsync.env
#   sudo systemctl enable --now crmsync-worker crmsync-scheduler crmsync-admin   # distributed
#   sudo systemctl enable --now crmsync-run                                      # or embedded
# What it makes: the system user `crmsync`; /opt/crmsync, a virtualenv with crmsync at the
# versions CI tested (deploy/constraints.txt), owned by root and read-only to the service;
# /etc/crmsync/config.yaml and crmsync.env (root:crmsync, 0640; kept if they exist); the
# units in /etc/systemd/system. /var/lib/crmsync is made by the units (StateDirectory).
# Run it again to upgrade: the venv is rebuilt, config and credentials are kept, and the
# crmsync-migrate unit migrates the store before the others start.
#
# CI runs it in a private mount namespace with ETC_DIR and UNIT_DIR pointed at a scratch
# directory and CRMSYNC_GROUP=root (no user is created then), and verifies what it installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
PREFIX=/opt/crmsync                  # the units' ExecStart path
ETC_DIR="${ETC_DIR:-/etc/crmsync}"
UNIT_DIR="${UNIT_DIR:-/etc/systemd/system}"
GROUP="${CRMSYNC_GROUP:-crmsync}"

if [ "$GROUP" = crmsync ] && ! id crmsync >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/crmsync --no-create-home --shell /usr/sbin/nologin crmsync
fi
# A fresh virtualenv each time (stop the units first on an upgrade): nothing stale survives.
"$PYTHON" -m venv --clear "$PREFIX"
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check -c deploy/constraints.txt .
chown -R root:root "$PREFIX"
chmod -R go-w "$PREFIX"

install -d -o root -g "$GROUP" -m 0750 "$ETC_DIR"
[ -e "$ETC_DIR/config.yaml" ] || install -o root -g "$GROUP" -m 0640 config.yaml "$ETC_DIR/config.yaml"
[ -e "$ETC_DIR/crmsync.env" ] || install -o root -g "$GROUP" -m 0640 deploy/crmsync.env.example "$ETC_DIR/crmsync.env"
install -d "$UNIT_DIR"
install -o root -g root -m 0644 deploy/systemd/crmsync-*.service "$UNIT_DIR/"
if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
"$PREFIX/bin/crmsync" --version
echo "installed; fill in $ETC_DIR/crmsync.env, then check it (as the service will read it):"
echo "  sudo systemd-run --pipe --wait -p User=crmsync -p EnvironmentFile=$ETC_DIR/crmsync.env \\"
echo "      -E CRMSYNC_REMOTE_ONLY=1 $PREFIX/bin/crmsync --config $ETC_DIR/config.yaml config check"
