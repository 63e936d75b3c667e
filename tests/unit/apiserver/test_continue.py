"""Continue tokens in Kubernetes' format, and refusal of garbage."""

from __future__ import annotations

import base64
import json

import pytest

from apiserver import errors
from apiserver.registry import decode_continue, encode_continue


def test_round_trip_and_format() -> None:
    prefix = "/registry/pods/default/"
    token = encode_continue(42, prefix + "web-1", prefix)
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert body == {"v": "meta.k8s.io/v1", "rv": 42, "start": "web-1\x00"}
    assert decode_continue(token, prefix) == (42, prefix + "web-1")


@pytest.mark.parametrize(
    "token", ["!!!", "e30", base64.urlsafe_b64encode(b'{"v":"x","rv":1,"start":"a"}').decode()]
)
def test_garbage_is_400(token: str) -> None:
    with pytest.raises(errors.ApiError) as e:
        decode_continue(token, "/registry/pods/")
    assert e.value.code == 400
