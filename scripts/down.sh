#!/usr/bin/env bash
# Stops what scripts/up.sh started, by the PIDs it recorded. Data stays.
set -euo pipefail
source "$(dirname "$0")/as-root.sh"
STATE=${SKIFF_STATE_DIR:-/var/lib/skiff}
stop() {  # name pidfile: stop what up.sh started, by the PID it recorded
    if [ -f "$2" ] && kill -0 "$(cat "$2")" 2>/dev/null; then
        pid=$(cat "$2")
        kill -TERM "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        echo "skiff: $1 stopped"
    fi
    rm -f "$2"
}
# Containers keep running without their runtime daemon, as with containerd.
stop runtime "$STATE/runtime.pid"
stop scheduler "$STATE/scheduler.pid"
stop controller-manager "$STATE/controller-manager.pid"
pidfile=$STATE/apiserver.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "skiff: API server stopped"
else
    echo "skiff: the API server is not running"
fi
rm -f "$pidfile"
# The embedded etcd stops with the API server; if it was left behind, stop it too.
if [ -f "$STATE/etcd.pid" ] && kill -0 "$(cat "$STATE/etcd.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$STATE/etcd.pid")"
fi
rm -f "$STATE/etcd.pid"
