#!/usr/bin/env bash
# Installs what skiff needs and is missing: Debian packages through apt-get,
# Python packages into .venv/ at the project root. Safe to run again: it only
# does work when something is absent or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "skiff: run this as root (it installs packages and later creates namespaces and cgroups)" >&2
        exit 1
    fi
}

# command -> Debian package that provides it
declare -A PKG=(
    [etcd]=etcd-server
    [etcdctl]=etcd-client
    [iptables]=iptables
    [ip]=iproute2
    [busybox]=busybox-static
    [runc]=runc
    [crun]=crun
    [docker-registry]=docker-registry
    [skopeo]=skopeo
    [umoci]=umoci
    [htpasswd]=apache2-utils
    [kubectl]=kubernetes-client
)
missing=()
for cmd in "${!PKG[@]}"; do
    if [ "$cmd" = busybox ]; then
        [ -x /bin/busybox ] || missing+=("${PKG[$cmd]}")
    elif ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("${PKG[$cmd]}")
    fi
done
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    need_root
    echo "skiff: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.skiff-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
    echo "skiff: creating .venv/"
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "skiff: installing Python packages into .venv/"
    .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/pip install -q -e '.[test]'
    echo "$want" > "$stamp"
fi
# skiff-runc starts on every container start: run it without site imports (-S)
# and isolated (-I), which is three times faster than a console script.
cat > .venv/bin/skiff-runc <<SH
#!/bin/sh
exec "$PWD/.venv/bin/python" -I -S "$PWD/runtime/runc/skiff_runc.py" "\$@"
SH
chmod 755 .venv/bin/skiff-runc
