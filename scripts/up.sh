#!/usr/bin/env bash
# Installs what is missing and brings up skiff as far as it is built: today the
# API server with its embedded etcd, the controller-manager, the scheduler,
# and the node's container runtime with a busybox image. Prints how to reach it.
# Stop it again with scripts/down.sh.
set -euo pipefail
source "$(dirname "$0")/as-root.sh"
cd "$(dirname "$0")/.."
bash scripts/install.sh

STATE=${SKIFF_STATE_DIR:-/var/lib/skiff}
PORT=${SKIFF_PORT:-6443}
ADVERTISE=${SKIFF_ADVERTISE_ADDRESS:-127.0.0.1}
mkdir -p "$STATE"
pidfile=$STATE/apiserver.pid

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "skiff: the API server is already running (pid $(cat "$pidfile"))"
else
    echo "skiff: starting the API server (log: $STATE/apiserver.log)"
    setsid .venv/bin/skiff apiserver --state-dir "$STATE" --secure-port "$PORT" \
        --advertise-address "$ADVERTISE" >>"$STATE/apiserver.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
fi

wait_until() {  # what log pidfile check...: run check until it succeeds, for up to 60 s
    local what=$1 log=$2 pidfile=$3
    shift 3
    for _ in $(seq 1 120); do
        if "$@"; then return; fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "skiff: the $what stopped; the end of its log:" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        sleep 0.5
    done
}

apiserver_ready() {
    [ -f "$STATE/pki/ca.crt" ] && \
    .venv/bin/python - "$STATE/pki/ca.crt" "$ADVERTISE" "$PORT" <<'PY' 2>/dev/null
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
urllib.request.urlopen(f"https://{sys.argv[2]}:{sys.argv[3]}/readyz", context=ctx, timeout=2)
PY
}
wait_until "API server" "$STATE/apiserver.log" "$pidfile" apiserver_ready

start_component() {  # name: start `skiff <name>` unless it already runs
    local pidfile=$STATE/$1.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "skiff: the $1 is already running (pid $(cat "$pidfile"))"
        return
    fi
    echo "skiff: starting the $1 (log: $STATE/$1.log)"
    setsid .venv/bin/skiff "$1" --kubeconfig "$STATE/admin.kubeconfig" \
        >>"$STATE/$1.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
}
start_component controller-manager
start_component scheduler

# The node's side, as far as it is built: the busybox image (offline, from
# busybox-static) and the container runtime daemon the kubelet will drive.
if ! .venv/bin/skiff image inspect busybox >/dev/null 2>&1; then
    echo "skiff: building the busybox image from busybox-static"
    .venv/bin/skiff image build-busybox >/dev/null
fi
runtime_pid=$STATE/runtime.pid
if [ -f "$runtime_pid" ] && kill -0 "$(cat "$runtime_pid")" 2>/dev/null; then
    echo "skiff: the runtime is already running (pid $(cat "$runtime_pid"))"
else
    echo "skiff: starting the container runtime (log: $STATE/runtime.log)"
    rm -f /run/skiff/runtime.sock  # a stale one must not pass for the new daemon's
    setsid .venv/bin/skiff runtime --pod-cidr "${SKIFF_POD_CIDR:-10.244.0.0/24}" \
        >>"$STATE/runtime.log" 2>&1 < /dev/null &
    echo $! > "$runtime_pid"
    wait_until "container runtime" "$STATE/runtime.log" "$runtime_pid" \
        test -S /run/skiff/runtime.sock
fi

# Which kubectl to suggest: the one on PATH when it is 1.30 or later (skiff reports
# v1.32; Debian's kubernetes-client 1.20 is far too old), else the current one
# install.sh put into .venv/bin.
KUBECTL=$PWD/.venv/bin/kubectl
if command -v kubectl >/dev/null 2>&1; then
    minor=$(kubectl version --client -o json 2>/dev/null | .venv/bin/python -c \
        'import json, sys; print(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+"))' \
        2>/dev/null || echo 0)
    if [ "$minor" -ge 30 ]; then KUBECTL=kubectl; fi
fi

cat <<MSG

skiff is up: the Kubernetes API is at https://$ADVERTISE:$PORT

  export KUBECONFIG=$STATE/admin.kubeconfig
  $KUBECTL get namespaces
  $KUBECTL api-resources
  $KUBECTL create deployment web --image=busybox --replicas=2 -- httpd -f -p 8080
  $KUBECTL get deployments,replicasets,pods

busybox is the image skiff built here from busybox-static: it needs no registry.
The node's images: .venv/bin/skiff image ls   (load archives with: skiff image load FILE)
The container runtime serves CRI-like gRPC on /run/skiff/runtime.sock.

Stop it with: bash scripts/down.sh   (data stays in $STATE)
MSG
