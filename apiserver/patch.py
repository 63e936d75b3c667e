"""PATCH bodies: JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386).

JSON Patch is done by the well-kept `jsonpatch` library (its `test` operation
and pointer escaping are easy to get subtly wrong). Merge patch is short
enough to state here: objects merge key by key, `null` deletes, anything else
— lists included — replaces.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from . import errors

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


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
    try:
        result = jsonpatch.JsonPatch(operations).apply(target)
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
    ) as e:
        raise errors.ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    if not isinstance(result, dict):
        raise errors.bad_request("a patch must leave an object")
    return result
