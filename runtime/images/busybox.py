"""A busybox image built on the node from Debian's busybox-static, with no network."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .store import Image, ImageStore

BUSYBOX = Path("/bin/busybox")
NAME = "docker.io/library/busybox:latest"

# The image's /bin/wget. Debian 12's busybox (1.35.0, static and dynamic alike) is
# built without FEATURE_WGET_TIMEOUT, yet its wget still parses `-T N` as a number
# and stores it through a NULL pointer: SIGSEGV before any connection, on the host
# too (busybox bug; Debian enables the feature from 1.36.1-5 on). Plain
# `wget -qO- URL` is fine. Users of a real busybox pod bound their checks with
# `wget -T 2 ...` or `--timeout=2`, so this takes the timeout out of the arguments
# (short options grouped or not, long ones) and runs busybox's wget under busybox's
# `timeout`, answering on expiry as busybox wget does. The bound is on the whole
# download, where busybox's own is per network wait.
WGET = r"""#!/bin/sh
# busybox wget with its -T SEC / --timeout=SEC: Debian 12's busybox is built without
# FEATURE_WGET_TIMEOUT, yet still parses -T and writes the number through a NULL
# pointer (SIGSEGV). This takes the timeout out of the arguments and bounds the
# download with busybox's timeout instead; on expiry it says what busybox wget says.
secs=
n=$#
while [ "$n" -gt 0 ]; do
	a=$1; shift; n=$((n - 1)); copy_next=
	case $a in
	--)
		set -- "$@" --
		while [ "$n" -gt 0 ]; do set -- "$@" "$1"; shift; n=$((n - 1)); done ;;
	--timeout=*) secs=${a#--timeout=} ;;
	--timeout)
		[ "$n" -gt 0 ] && { secs=$1; shift; n=$((n - 1)); } ;;
	--output-document|--output-file|--directory-prefix|--proxy|--user-agent|--tries|\
	--header|--post-data|--post-file)
		set -- "$@" "$a"; copy_next=1 ;;
	-?*)
		case $a in --*) set -- "$@" "$a"; continue ;; esac
		out=- rest=${a#-}
		while [ -n "$rest" ]; do
			c=${rest%"${rest#?}"} rest=${rest#?}
			case $c in
			T)
				if [ -n "$rest" ]; then secs=$rest
				elif [ "$n" -gt 0 ]; then secs=$1; shift; n=$((n - 1))
				fi
				rest= ;;
			[OoPYUt])
				out=$out$c$rest
				[ -z "$rest" ] && copy_next=1
				rest= ;;
			n) out=$out$c$rest rest= ;;
			*) out=$out$c ;;
			esac
		done
		[ "$out" != - ] && set -- "$@" "$out" ;;
	*) set -- "$@" "$a" ;;
	esac
	if [ -n "$copy_next" ] && [ "$n" -gt 0 ]; then
		set -- "$@" "$1"; shift; n=$((n - 1))
	fi
done
case $secs in
'' | 0) exec /bin/busybox wget "$@" ;;
*[!0-9]*)
	echo "wget: invalid number '$secs'" >&2
	exit 1 ;;
esac
/bin/busybox timeout "$secs" /bin/busybox wget "$@"
rc=$?
if [ "$rc" -eq 143 ]; then
	echo "wget: download timed out" >&2
	exit 1
fi
exit "$rc"
"""


def _applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return [a for a in out.stdout.split() if a and a != "busybox"]


# wget's getopt32 format in busybox 1.35 (`-T` an int option, `t`/`n` ignored; after
# the NUL, the complementary rules up to the next NUL).
_WGET_OPTS = b"^cqSO:o:P:Y:U:T:+t:n::\x00"


def without_wget_timeout_crash(binary: bytes) -> bytes:
    """busybox with wget's `-T` parsed as a string, as upstream proposes for builds
    without FEATURE_WGET_TIMEOUT: getopt32 then skips the NULL destination instead
    of writing the number through it. Only busybox's own shell needs this (it runs
    the applet, not /bin/wget); there `-T` is accepted and has no effect. The
    binary is returned unchanged unless the format appears exactly once."""
    if binary.count(_WGET_OPTS) != 1:
        return binary
    start = binary.index(_WGET_OPTS)
    plus = start + _WGET_OPTS.index(b"+")
    end = binary.index(b"\x00", start + len(_WGET_OPTS)) + 1  # the complementary string's NUL
    # Drop the "+", move the rest of both strings left by one, pad with a NUL: the
    # same length, so nothing else in the binary moves.
    return binary[:plus] + binary[plus + 1 : end] + b"\x00" + binary[end:]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def build_busybox(store: ImageStore, name: str = NAME) -> Image:
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w") as tar:
            for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            _add_bytes(tar, "bin/busybox", without_wget_timeout_crash(BUSYBOX.read_bytes()), 0o755)
            for applet in _applets():
                if applet == "wget":
                    _add_bytes(tar, "bin/wget", WGET.encode(), 0o755)
                    continue
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
            _add_bytes(
                tar,
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            )
            _add_bytes(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n")
        config = {
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        }
        return store.add(name, [layer], config)
