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
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
PREFIX=/opt/crmsync

if ! id crmsync >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/crmsync --no-create-home --shell /usr/sbin/nologin crmsync
fi
# A fresh virtualenv each time (stop the units first on an upgrade): nothing stale survives.
rm -rf "$PREFIX"
"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check -c deploy/constraints.txt .
chown -R root:root "$PREFIX"
chmod -R go-w "$PREFIX"

install -d -o root -g crmsync -m 0750 /etc/crmsync
[ -e /etc/crmsync/config.yaml ] || install -o root -g crmsync -m 0640 config.yaml /etc/crmsync/config.yaml
[ -e /etc/crmsync/crmsync.env ] || install -o root -g crmsync -m 0640 deploy/crmsync.env.example /etc/crmsync/crmsync.env
install -o root -g root -m 0644 deploy/systemd/crmsync-*.service /etc/systemd/system/
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
"$PREFIX/bin/crmsync" --version
echo "installed; fill in /etc/crmsync/crmsync.env, then check it:"
echo "  sudo -u crmsync env \$(grep -v '^#' /etc/crmsync/crmsync.env | xargs) CRMSYNC_REMOTE_ONLY=1 $PREFIX/bin/crmsync --config /etc/crmsync/config.yaml config check"
