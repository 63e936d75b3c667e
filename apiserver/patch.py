"""PATCH bodies: JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386).

JSON Patch is done by the well-kept `jsonpatch` library (its `test` operation
and pointer escaping are easy to get subtly wrong). Merge patch is short
enough to state here: objects merge key by key, `null` deletes, anything else
— lists included — replaces.
"""

from __future__ import annotations

import json
from typing import Any

import jsonpatch

from . import errors

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# What JSON Patch `copy` operations may copy in one request in total (as
# kube-apiserver's JSONPatchMaxCopyBytes bounds them): copying the object into
# itself doubles it, and forty doublings would exhaust any machine.
MAX_COPY_BYTES = 10 * 1024 * 1024


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise errors.bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    result: Any = target
    copied = 0
    try:
        # One operation at a time, in place (the target is the caller's copy), so that
        # `copy` operations that double the object each time are stopped while small.
        for operation in operations:
            if isinstance(operation, dict) and operation.get("op") == "copy":
                source = jsonpatch.JsonPointer(operation.get("from")).resolve(result)
                copied += len(json.dumps(source))
                if copied > MAX_COPY_BYTES:
                    raise errors.ApiError(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request: "
                        f"JSON patch copy operations would copy more than {MAX_COPY_BYTES} bytes",
                    )
            result = jsonpatch.JsonPatch([operation]).apply(result, in_place=True)
    except jsonpatch.JsonPatchTestFailed as e:
        raise errors.ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        ValueError,
    ) as e:
        raise errors.ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    if not isinstance(result, dict):
        raise errors.bad_request("a patch must leave an object")
    return result


# -- strategic merge patch ------------------------------------------------------
#
# Like a merge patch, except that some lists merge element by element, matched
# on a key (containers by name, ports by containerPort, ...) instead of being
# replaced; and a few `$` directives say "delete this element", "replace this
# whole map" or "keep this order". Which lists merge, and on what, is the
# `patchStrategy`/`patchMergeKey` of the Kubernetes types, listed here by the
# list's field name (qualified by its parent where one name means two things).

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "ports": "port",  # Service ports; container ports are keyed below
    "containers.ports": "containerPort",
    "initContainers.ports": "containerPort",
    "ephemeralContainers.ports": "containerPort",
}
# Lists of scalars that merge as sets rather than being replaced.
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def _merge_key(parent: str, field: str) -> str | None:
    return MERGE_KEYS.get(f"{parent}.{field}") or MERGE_KEYS.get(field)


def strategic_merge_patch(info: Any, target: dict[str, Any], patch: dict[str, Any]) -> Any:
    """Apply a strategic merge patch to one object of kind `info`."""
    try:
        return _smp_map(target, patch, "")
    except (TypeError, ValueError, KeyError) as e:
        raise errors.bad_request(f"unable to apply strategic merge patch: {e}") from e


DIRECTIVES = ("replace", "delete", "merge")


def _go_print(value: Any) -> str:
    """A decoded JSON value as Go's %v prints it (in strategic merge patch errors)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_print(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def _unknown_directive(directive: Any, where: dict[str, Any]) -> errors.ApiError:
    # Kubernetes' mergepatch.ErrBadPatchType, answered as a bad request.
    return errors.bad_request(
        f"unknown patch type: {_go_print(directive)} in map: {_go_print(where)}"
    )


def _smp_map(target: Any, patch: dict[str, Any], parent: str) -> Any:
    directive = patch.get("$patch")
    if directive is not None and directive not in DIRECTIVES:
        raise _unknown_directive(directive, patch)
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, parent, key)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(order, list):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = _ordered(result[field], order, _merge_key(parent, field))
    return result


def _smp_list(target: Any, patch: list[Any], parent: str, field: str) -> list[Any]:
    current = list(target) if isinstance(target, list) else []
    key = _merge_key(parent, field)
    if key is None:
        if field in MERGED_SCALAR_LISTS:
            return current + [x for x in patch if x not in current]
        return [x for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [x for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    result = list(current)
    for item in patch:
        if isinstance(item, dict) and item.get("$patch", "merge") not in DIRECTIVES:
            raise _unknown_directive(item["$patch"], item)
        if not isinstance(item, dict) or key not in item:
            raise ValueError(f"map in {field} lacks the merge key {key!r}")
        at = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if at is not None:
                result.pop(at)
            continue
        if at is None:
            result.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            result[at] = _smp_map(result[at], item, field)
    return result


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Items in the order the patch gives, the rest after, as $setElementOrder asks."""

    def ident(x: Any) -> Any:
        return x.get(key) if key and isinstance(x, dict) else x

    wanted = [ident(x) for x in order]
    ranked = [x for w in wanted for x in items if ident(x) == w]
    return ranked + [x for x in items if ident(x) not in wanted]
