#!/usr/bin/env bash
# Runs the whole skiff test suite: lint, then unit, integration and end-to-end
# tests. Integration and e2e tests start their own etcd, apiserver, namespaces
# and cgroups, and remove them again, so this needs root: run as another user it
# goes through sudo, or stops with one line (it never skips those tests quietly).
set -euo pipefail
source "$(dirname "$0")/as-root.sh"
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
# -rs: every skipped test is listed with its reason at the end; --durations: the
# slowest tests (with their fixtures' set-up), to keep the suite within its 20 minutes.
# pytest exits 5 when it collected no tests; that is a failure for us too.
set +e
.venv/bin/python -m pytest -q -rs --durations=25 -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "skiff: pytest collected no tests" >&2
fi
exit "$rc"
