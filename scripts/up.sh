#!/usr/bin/env bash
# Installs what is missing, then `skiff up`: this machine becomes a node (the
# apiserver with its embedded etcd, controller-manager, scheduler, container
# runtime, kubelet, service proxy and cluster DNS, supervised), then applies the
# demo from manifests/demo (a web Deployment behind a Service, and a client pod
# that asks it for a page every 2 seconds) and prints how to reach it all.
# Flags go to `skiff up`, e.g. `bash scripts/up.sh --node-ip 192.168.56.11`;
# SKIFF_NO_DEMO=1 leaves the demo out. Stop it with scripts/down.sh (or
# `skiff down`; `skiff reset` removes it all).
set -euo pipefail
source "$(dirname "$0")/as-root.sh"
cd "$(dirname "$0")/.."
bash scripts/install.sh
state="${SKIFF_STATE_DIR:-/var/lib/skiff}"
for arg in "$@"; do
    case "$arg" in
        --foreground|-h|--help) exec .venv/bin/skiff up --state-dir "$state" "$@" ;;
    esac
done
.venv/bin/skiff up --state-dir "$state" "$@"
[ "${SKIFF_NO_DEMO:-}" = 1 ] && exit 0

# The kubectl `skiff up` suggests: the PATH's when it is 1.30 or later, else .venv's.
kubectl=.venv/bin/kubectl
if command -v kubectl >/dev/null 2>&1 &&
    kubectl version --client -o json 2>/dev/null | grep -Eq '"minor": "(3[0-9]|[4-9][0-9])'; then
    kubectl=kubectl
fi
k() { "$kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }
echo "skiff: applying the demo (manifests/demo)"
k apply -f manifests/demo >/dev/null
if k rollout status deployment/web --timeout=180s >/dev/null &&
    k wait --for=condition=Ready pod/client --timeout=120s >/dev/null; then
    echo "skiff: the demo runs:"
    k get pods -o wide
    cat <<EOF

  kubectl get deploy,svc,pods -o wide
  kubectl logs -f client                        # the page, fetched through the web Service every 2 s
  kubectl exec client -- wget -qO- http://web   # once by hand (DNS name of the Service)
  kubectl scale deployment web --replicas=5
EOF
else
    echo "skiff: the demo did not become ready in time; see: $kubectl --kubeconfig $state/admin.kubeconfig get pods" >&2
    exit 1
fi
