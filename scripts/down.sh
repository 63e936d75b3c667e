#!/usr/bin/env bash
# Stops what scripts/up.sh started: `skiff down` (the pods, then the components).
# The cluster's state stays; `skiff reset` removes it and everything skiff made.
set -euo pipefail
source "$(dirname "$0")/as-root.sh"
cd "$(dirname "$0")/.."
STATE=${SKIFF_STATE_DIR:-/var/lib/skiff}
# Components an older scripts/up.sh started one by one, each with a pid file.
for name in runtime scheduler controller-manager apiserver; do
    pidfile=$STATE/$name.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill -TERM "$(cat "$pidfile")" && echo "skiff: stopped the $name an older up.sh started"
        rm -f "$pidfile"
    fi
done
exec .venv/bin/skiff down --state-dir "$STATE"
