"""Field ownership (`metadata.managedFields`) and server-side apply.

Every write records which *manager* set which fields. A manager that applies
a configuration (`kubectl apply --server-side`) owns exactly the fields in
that configuration: applying again without a field removes it from the object
(unless someone else also owns it), and applying a different value to a field
another manager owns is a conflict, unless the applier forces it.

Fields are paths like Kubernetes' fieldsV1: `f:<name>` steps into a map key,
`k:{"name":"web"}` into the element of a keyed list (containers by name...),
`v:"x"` is an element of a set-like list of scalars (finalizers), and `.`
marks a list element itself. Lists without a merge key are atomic: one leaf.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterator
from typing import Any

from api.resources import ResourceInfo

from . import errors
from .patch import MERGED_SCALAR_LISTS, _merge_key, strategic_merge_patch

Path = tuple[str, ...]
ITEM = "."
# Fields no manager owns: identity and server bookkeeping.
UNTRACKED_TOP = frozenset({"apiVersion", "kind"})
UNTRACKED_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the set of fields an object sets ------------------------------------------


def field_paths(obj: dict[str, Any]) -> set[Path]:
    """Every leaf path the object sets (plus `.` markers for keyed list items)."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in UNTRACKED_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in UNTRACKED_META}
            if meta:
                _walk(meta, ("f:metadata",), "metadata", out)
            continue
        _walk_value(value, (f"f:{key}",), "", key, out)
    return out


def _walk(obj: dict[str, Any], at: Path, parent: str, out: set[Path]) -> None:
    for key, value in obj.items():
        _walk_value(value, (*at, f"f:{key}"), parent, key, out)


def _walk_value(value: Any, at: Path, parent: str, key: str, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        _walk(value, at, key, out)
    elif isinstance(value, list) and value:
        merge_key = _merge_key(parent, key)
        if merge_key and all(isinstance(x, dict) and merge_key in x for x in value):
            for item in value:
                item_at = (*at, item_step(merge_key, item))
                out.add((*item_at, ITEM))
                _walk({k: v for k, v in item.items() if k != merge_key}, item_at, key, out)
                out.add((*item_at, f"f:{merge_key}"))
        elif key in MERGED_SCALAR_LISTS:
            for item in value:
                out.add((*at, "v:" + json.dumps(item, separators=(",", ":"))))
        else:
            out.add(at)  # an atomic list is one field
    else:
        out.add(at)


def item_step(merge_key: str, item: dict[str, Any]) -> str:
    return "k:" + json.dumps({merge_key: item[merge_key]}, separators=(",", ":"))


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for step in path:
            node = node.setdefault(step, {})
    return root


def from_fields_v1(tree: dict[str, Any], at: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for step, sub in tree.items():
        if isinstance(sub, dict) and sub:
            out |= from_fields_v1(sub, (*at, step))
        else:
            out.add((*at, step))
    return out


def render(path: Path) -> str:
    """A path as Kubernetes prints it in a conflict: `.spec.containers[name="web"].image`."""
    text = ""
    for step in path:
        kind, _, rest = step.partition(":")
        if kind == "f":
            text += "." + rest
        elif kind == "k":
            text += (
                "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
            )
        elif kind == "v":
            text += f"[{rest}]"
    return text


# -- reading values at a path -------------------------------------------------------------


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for step in path:
        if step == ITEM:
            return node
        kind, _, rest = step.partition(":")
        if kind == "f" and isinstance(node, dict):
            node = node.get(rest, _MISSING)
        elif kind == "k" and isinstance(node, list):
            want = json.loads(rest)
            node = next(
                (
                    x
                    for x in node
                    if isinstance(x, dict) and all(x.get(k) == v for k, v in want.items())
                ),
                _MISSING,
            )
        elif kind == "v" and isinstance(node, list):
            item = json.loads(rest)
            node = item if item in node else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def remove_at(obj: Any, path: Path) -> None:
    """Remove the field (or list item) at `path`; empty parents stay, as in Kubernetes."""
    if not path:
        return
    if path[-1] == ITEM:
        path = path[:-1]
        parent = value_at(obj, path[:-1])
        want = json.loads(path[-1].partition(":")[2])
        if isinstance(parent, list):
            parent[:] = [
                x
                for x in parent
                if not (isinstance(x, dict) and all(x.get(k) == v for k, v in want.items()))
            ]
        return
    parent = value_at(obj, path[:-1])
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "v" and isinstance(parent, list):
        item = json.loads(rest)
        parent[:] = [x for x in parent if x != item]


# -- managedFields entries --------------------------------------------------------------


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj.get("metadata", {}).get("managedFields") or [])


def _owned(entry: dict[str, Any]) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1") or {})


def _entry(
    manager: str, operation: str, api_version: str, paths: set[Path], subresource: str = ""
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": _now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _set_entries(obj: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    kept = [e for e in entries if e.get("fieldsV1")]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def _same_manager(e: dict[str, Any], manager: str, operation: str, subresource: str) -> bool:
    return (
        e.get("manager") == manager
        and e.get("operation") == operation
        and e.get("subresource", "") == subresource
    )


def _changed(old: dict[str, Any] | None, new: dict[str, Any]) -> set[Path]:
    new_paths = field_paths(new)
    if old is None:
        return new_paths
    return {p for p in new_paths if value_at(old, p) != value_at(new, p)}


def track_update(
    info: ResourceInfo,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    subresource: str = "",
) -> None:
    """Record a create/update/patch by `manager`: it now owns what it changed."""
    entries = _entries(old) if old is not None else []
    live_paths = field_paths(new)
    changed = _changed(old, new)
    updated: list[dict[str, Any]] = []
    mine: set[Path] = set()
    for e in entries:
        owned = _owned(e) & live_paths
        if _same_manager(e, manager, "Update", subresource):
            mine = owned
            continue
        updated.append({**e, "fieldsV1": to_fields_v1(owned - changed)})
    mine = (mine | changed) & live_paths
    if mine:
        updated.append(_entry(manager, "Update", info.api_version, mine, subresource))
    _set_entries(new, updated)


def apply(
    info: ResourceInfo,
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    *,
    force: bool,
) -> dict[str, Any]:
    """Server-side apply of `config` by `manager` onto `live` (None: create)."""
    applied = field_paths(config)
    if live is None:
        obj = copy.deepcopy(config)
        _set_entries(obj, [_entry(manager, "Apply", info.api_version, applied)])
        return obj
    entries = _entries(live)
    previous: set[Path] = set()
    others: list[tuple[dict[str, Any], set[Path]]] = []
    for e in entries:
        if _same_manager(e, manager, "Apply", ""):
            previous = _owned(e)
        else:
            others.append((e, _owned(e)))

    conflicts: list[tuple[str, str, Path]] = []
    for e, owned in others:
        for path in sorted(owned & applied):
            if path[-1] == ITEM:
                continue
            if value_at(live, path) != value_at(config, path):
                conflicts.append((e["manager"], e.get("apiVersion", info.api_version), path))
    if conflicts and not force:
        allowed = allowed_by_last_applied(live, manager)
        conflicts = [c for c in conflicts if c[2] not in allowed]
        if conflicts:
            raise apply_conflict(conflicts)
        # Every conflict is a field the client-side apply configuration set: the
        # documented client-side -> server-side upgrade hands them to `kubectl`.
        conflicts = [
            (e["manager"], "", path)
            for e, owned in others
            for path in owned & applied & allowed
            if value_at(live, path) != value_at(config, path)
        ]

    obj = copy.deepcopy(live)
    owned_by_others = set().union(*(owned for _, owned in others)) if others else set()
    # Whole list items first: removing an item's key field first would lose the item.
    for path in sorted(previous - applied, key=lambda p: (p[-1] != ITEM, len(p))):
        if _still_wanted(path, owned_by_others | applied):
            continue
        remove_at(obj, path)
    body = {k: v for k, v in config.items() if k not in ("apiVersion", "kind")}
    body["metadata"] = {
        k: v for k, v in (config.get("metadata") or {}).items() if k not in UNTRACKED_META
    }
    obj = strategic_merge_patch(info, obj, body)
    live_paths = field_paths(obj)
    updated: list[dict[str, Any]] = []
    conflicting = {c[2] for c in conflicts}
    for e, owned in others:
        # A forced apply takes over the conflicting fields; equal values stay shared.
        updated.append({**e, "fieldsV1": to_fields_v1((owned - conflicting) & live_paths)})
    updated.append(_entry(manager, "Apply", info.api_version, applied & live_paths))
    _set_entries(obj, updated)
    return obj


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# kube-apiserver upgrades client-side apply only for kubectl's own server-side manager;
# another manager name is the documented way to opt out.
UPGRADING_MANAGER = "kubectl"


def allowed_by_last_applied(live: dict[str, Any], manager: str) -> set[Path]:
    """The fields a server-side apply by `kubectl` may take over without force: those in
    the client-side apply annotation (kube-apiserver's lastAppliedManager)."""
    if manager != UPGRADING_MANAGER:
        return set()
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return set()
    try:
        last = json.loads(text)
    except ValueError:
        return set()
    return field_paths(last) if isinstance(last, dict) else set()


def _still_wanted(path: Path, owned: set[Path]) -> bool:
    """A field stays when someone owns it; a list item while anyone owns a field in it."""
    if path in owned:
        return True
    if path[-1] == ITEM:
        item = path[:-1]
        return any(o[: len(item)] == item for o in owned)
    return False


def apply_conflict(conflicts: list[tuple[str, str, Path]]) -> errors.ApiError:
    """409 in Kubernetes' words, one cause per conflicting field."""
    n = len(conflicts)
    lines = [f'conflict with "{m}" using {v}: {render(p)}' for m, v, p in conflicts]
    if n == 1:
        message = f"Apply failed with 1 conflict: {lines[0]}"
    else:
        message = f"Apply failed with {n} conflicts: " + "\n".join(lines)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{m}" using {v}',
            "field": render(p),
        }
        for m, v, p in conflicts
    ]
    return errors.ApiError(409, "Conflict", message, details={"causes": causes})


def manager_name(field_manager: str, user_agent: str) -> str:
    """The manager of a write: `fieldManager`, else the User-Agent up to its first `/`."""
    if field_manager:
        return field_manager
    return (user_agent.split("/", 1)[0] or "unknown")[:128]


def iter_managers(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for e in _entries(obj):
        yield e.get("manager", ""), e.get("operation", "")
