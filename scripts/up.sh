#!/usr/bin/env bash
# Installs what is missing, then `skiff up`: this machine becomes a node (the
# apiserver with its embedded etcd, controller-manager, scheduler, container
# runtime and kubelet, supervised), and it prints how to reach it once the node
# is Ready. Flags go to `skiff up`, e.g. `bash scripts/up.sh --node-ip 192.168.56.11`.
# Stop it again with scripts/down.sh (or `skiff down`; `skiff reset` removes it all).
set -euo pipefail
source "$(dirname "$0")/as-root.sh"
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/skiff up --state-dir "${SKIFF_STATE_DIR:-/var/lib/skiff}" "$@"
