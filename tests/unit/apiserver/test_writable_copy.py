"""The one copy an update or delete makes of the object it starts from (which may be
the watch cache's, shared with every reader): equal, and sharing nothing changeable."""

from __future__ import annotations

import math
from typing import Any

import pytest

from apiserver.registry import writable_copy


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "ConfigMap", "metadata": {"name": "a", "labels": {}}, "data": {"k": "v"}},
        {"z": 1, "a": 2, "m": [3, {"y": None, "b": True, "f": False}]},
        {"big": 10**300, "neg": -(2**63), "digits": "1234567890123456789012"},
        {"float": 0.1, "tiny": 1e-7, "negzero": -0.0, "large": 1.5e300},
        {"text": 'héllo 世界 \u2028 "q" \\ \n', "lone": "x\ud800y"},
        {"deep": [[[[{"a": [1, [2, [3]]]}]]]]},
    ],
)
def test_the_copy_is_equal_and_independent(obj: dict[str, Any]) -> None:
    copied = writable_copy(obj)
    assert copied == obj
    assert list(copied) == list(obj)  # key order kept
    for key, value in obj.items():
        assert type(copied[key]) is type(value)
        if isinstance(value, float):
            assert math.copysign(1, copied[key]) == math.copysign(1, value)

    def containers(o: Any) -> list[int]:
        if isinstance(o, dict):
            return [id(o)] + [i for v in o.values() for i in containers(v)]
        if isinstance(o, list):
            return [id(o)] + [i for v in o for i in containers(v)]
        return []

    assert not set(containers(copied)) & set(containers(obj))
