#!/usr/bin/env bash
# Runs the whole skiff test suite: lint, then unit, integration and end-to-end
# tests. Integration and e2e tests start their own etcd, apiserver, namespaces
# and cgroups, and remove them again, so this wants root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
# pytest exits 5 when it collected no tests; that is a failure for us too.
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "skiff: pytest collected no tests" >&2
fi
exit "$rc"
