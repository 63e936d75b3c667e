"""Who a container's process runs as: the image's `User` and the pod's security context.

Docker's rules, which containerd and CRI-O follow: `User` is `user`,
`user:group`, `uid` or `uid:gid`; names are looked up in the container's own
`/etc/passwd` and `/etc/group`, never the host's. A user without a group gets
its primary group from `/etc/passwd` (0 when it has no entry), and the groups
that list the user in `/etc/group` are added. `runAsUser` and `runAsGroup`
take precedence over the image, as in Kubernetes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class UnknownUser(ValueError):
    """A user or group name the image's files do not define."""


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)


def _read(rootfs: Path, name: str) -> list[list[str]]:
    """Colon-separated records of <rootfs>/etc/<name>; a symlink is not followed, so
    an image cannot make us read a file of the host."""
    path = rootfs / "etc" / name
    if (rootfs / "etc").is_symlink() or path.is_symlink() or not path.is_file():
        return []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return []
    with os.fdopen(fd) as f:
        return [line.rstrip("\n").split(":") for line in f if line.strip() and ":" in line]


def image_uid(user: str) -> tuple[int | None, str]:
    """(uid, "") for a numeric User, (None, name) for a named one, as CRI's Image reports."""
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    return (int(name), "") if name.isdigit() else (None, name)


def resolve(
    rootfs: Path,
    image_user: str,
    run_as_user: int | None,
    run_as_group: int | None,
    supplemental: list[int],
) -> User:
    user_part, _, group_part = (image_user or "").partition(":")
    passwd = _read(rootfs, "passwd")
    entry: list[str] | None = None
    if run_as_user is not None:
        uid = run_as_user
        entry = next((e for e in passwd if len(e) > 3 and e[2] == str(uid)), None)
    elif not user_part or user_part.isdigit():
        uid = int(user_part or 0)
        entry = next((e for e in passwd if len(e) > 3 and e[2] == str(uid)), None)
    else:
        entry = next((e for e in passwd if len(e) > 3 and e[0] == user_part), None)
        if entry is None:
            raise UnknownUser(f"the image's user {user_part!r} is not in its /etc/passwd")
        uid = int(entry[2])
    groups = _read(rootfs, "group")
    if run_as_group is not None:
        gid = run_as_group
    elif group_part and run_as_user is None:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            group = next((g for g in groups if len(g) > 2 and g[0] == group_part), None)
            if group is None:
                raise UnknownUser(f"the image's group {group_part!r} is not in its /etc/group")
            gid = int(group[2])
    else:
        gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    extra: list[int] = []
    if entry is not None:
        for g in groups:
            if len(g) > 3 and entry[0] in g[3].split(",") and g[2].isdigit():
                extra.append(int(g[2]))
    for g in supplemental:
        if g not in extra:
            extra.append(g)
    return User(uid, gid, [g for g in extra if g != gid] if extra else [])
