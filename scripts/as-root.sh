# Sourced by the scripts that need root (namespaces, cgroups, iptables, apt-get).
# As root: nothing to do. Otherwise run the calling script again through sudo
# when there is one (a user with sudo types the same command as root does); a
# minimal Debian has no sudo: then say so in one line and stop.
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -- bash "$0" "$@"
    fi
    echo "skiff: $0 needs root and there is no sudo here: run it as root, e.g. su -c 'bash $0'" >&2
    exit 1
fi
