"""The apiserver's JSON codec writes what the standard library wrote, faster."""

from __future__ import annotations

import json

import pytest

from apiserver import jsoncodec


def std(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a"}, "data": {"k": "v"}},
        {"z": 1, "a": 2, "m": [3, {"y": None, "b": True}]},  # key order kept, not sorted
        {"text": 'héllo 世界 \u2028 "quoted" \\ back \n line'},
        {"big": 10**300, "small": -(2**63)},  # past 64 bits: the standard library writes it
        {"float": 0.5, "int": 3, "neg": -1, "empty": {}, "list": []},
    ],
)
def test_dumps_is_byte_for_byte_what_json_wrote(obj: object) -> None:
    assert jsoncodec.dumps(obj) == std(obj)


def test_a_lone_surrogate_is_escaped_not_a_crash() -> None:
    obj = {"bad": "x\ud800y"}
    out = jsoncodec.dumps(obj)
    assert json.loads(out) == obj


def test_loads_reads_what_json_reads_and_refuses_what_it_refuses() -> None:
    assert jsoncodec.loads(b'{"a":[1,2.5,"s",null,true],"b":{"c":"\\u00e9"}}') == {
        "a": [1, 2.5, "s", None, True],
        "b": {"c": "é"},
    }
    assert jsoncodec.loads(b'{"n":' + str(10**30).encode() + b"}") == {"n": 10**30}
    with pytest.raises(ValueError):
        jsoncodec.loads(b"{not json")
