"""Bad input: a Kubernetes Status with the right code and causes, and nothing stored."""

from __future__ import annotations

from typing import Any

import httpx

YAML = {"Content-Type": "application/yaml"}


def assert_status(r: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert "Traceback" not in r.text
    return body


def test_invalid_object_names_every_bad_field(api: httpx.Client, namespace: str) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c"}]},
            },
        },
    }
    r = api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=bad)
    body = assert_status(r, 422, "Invalid")
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {
        "metadata.name",
        "spec.replicas",
        "spec.template.metadata.labels",
        "spec.template.spec.containers[0].image",
    } <= fields
    assert body["details"]["name"] == "Bad_Name"
    assert body["details"]["kind"] == "Deployment"
    assert body["message"].startswith('Deployment.apps "Bad_Name" is invalid: ')
    listed = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").json()
    assert listed["items"] == []


def test_malformed_json_and_yaml_are_400(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    assert_status(
        api.post(
            url, content=b'{"metadata": {"name": "x"', headers={"Content-Type": "application/json"}
        ),
        400,
        "BadRequest",
    )
    assert_status(api.post(url, content=b"metadata: [unclosed", headers=YAML), 400, "BadRequest")
    assert_status(
        api.post(url, content=b"[1, 2]", headers={"Content-Type": "application/json"}),
        400,
        "BadRequest",
    )
    ok = api.post(url, content=b"metadata:\n  name: from-yaml\ndata:\n  a: b\n", headers=YAML)
    assert ok.status_code == 201, ok.text
    names = [i["metadata"]["name"] for i in api.get(url).json()["items"]]
    assert names == ["from-yaml"]


def test_body_over_3mib_is_413(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    huge = {"metadata": {"name": "huge"}, "data": {"blob": "x" * (3 * 1024 * 1024 + 10)}}
    assert_status(api.post(url, json=huge), 413, "RequestEntityTooLarge")
    assert api.get(f"{url}/huge").status_code == 404


def test_unknown_paths_and_kinds_are_404(api: httpx.Client, namespace: str) -> None:
    assert_status(api.get("/api/v1/namespaces/default/widgets"), 404, "NotFound")
    assert_status(api.get("/apis/nope.example.com/v1/things"), 404, "NotFound")
    assert_status(api.get("/no/such/path"), 404, "NotFound")
    assert_status(api.get("/api/v1/nodes/a/b/c/d"), 404, "NotFound")
    missing = assert_status(api.get(f"/api/v1/namespaces/{namespace}/pods/ghost"), 404, "NotFound")
    assert missing["message"] == 'pods "ghost" not found'
    assert missing["details"] == {"name": "ghost", "kind": "pods"}


def test_wrong_kind_in_body_is_400(api: httpx.Client, namespace: str) -> None:
    r = api.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
    )
    assert_status(r, 400, "BadRequest")


def test_unknown_fields_strict_is_400_warn_drops(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"metadata": {"name": "u"}, "data": {}, "colour": "blue"}
    strict = api.post(url, params={"fieldValidation": "Strict"}, json=body)
    assert_status(strict, 400, "BadRequest")
    assert 'unknown field "colour"' in strict.json()["message"]
    assert api.get(f"{url}/u").status_code == 404
    warned = api.post(url, params={"fieldValidation": "Warn"}, json=body)
    assert warned.status_code == 201
    assert 'unknown field \\"colour\\"' in warned.headers["Warning"]
    assert "colour" not in warned.json()


def test_invalid_update_changes_nothing(api: httpx.Client, namespace: str, build: Any) -> None:
    url = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = api.post(url, json=build.deployment("keep")).json()
    changed = dict(created)
    changed["spec"] = {**created["spec"], "selector": {"matchLabels": {"app": "other"}}}
    r = api.put(f"{url}/keep", json=changed)
    body = assert_status(r, 422, "Invalid")
    assert "spec.selector" in {c["field"] for c in body["details"]["causes"]}
    after = api.get(f"{url}/keep").json()
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_method_not_allowed(api: httpx.Client) -> None:
    assert_status(api.put("/api/v1/namespaces/default/pods", json={}), 405, "MethodNotAllowed")


def test_duplicate_fields_refused_when_strict_warned_otherwise(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    body = b'{"metadata": {"name": "dup", "name": "dup2"}, "data": {}}'
    json_type = {"Content-Type": "application/json"}
    strict = api.post(url, params={"fieldValidation": "Strict"}, content=body, headers=json_type)
    assert_status(strict, 400, "BadRequest")
    assert 'duplicate field "name"' in strict.json()["message"]
    assert api.get(f"{url}/dup2").status_code == 404
    warned = api.post(url, params={"fieldValidation": "Warn"}, content=body, headers=json_type)
    assert warned.status_code == 201
    assert "duplicate field" in warned.headers["Warning"]


# -- input that used to be stored although it failed, or broke reads ----------------

JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}


def _reads_still_work(api: httpx.Client, namespace: str) -> None:
    """Every list a user (or a controller) makes still answers 200."""
    for url in (
        f"/api/v1/namespaces/{namespace}/configmaps",
        "/api/v1/configmaps",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "/api/v1/pods",
        "/api/v1/namespaces",
    ):
        r = api.get(url)
        assert r.status_code == 200, (url, r.text)


def test_lone_surrogates_are_400_and_nothing_is_stored(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    bodies = [
        b'{"metadata": {"name": "s1", "annotations": {"a": "\\ud800"}}}',
        b'{"metadata": {"name": "s2"}, "data": {"\\udfff": "x"}}',
        b'{"kind": "\\ud83d", "metadata": {"name": "s3"}}',
        b'{"metadata": {"name": "s4"}, "data": {"k": "ok \\ud83d then"}}',
    ]
    for body in bodies:
        r = api.post(url, content=body, headers=JSON)
        problem = assert_status(r, 400, "BadRequest")
        assert "surrogate" in problem["message"], problem
    yaml_body = b'metadata:\n  name: s5\ndata:\n  k: "\\ud800"\n'
    assert api.post(url, content=yaml_body, headers=YAML).status_code == 400
    assert api.get(url).json()["items"] == []
    # A valid pair (an emoji written as two escapes) is fine.
    ok = api.post(url, content=b'{"metadata": {"name": "ok"}, "data": {"e": "\\ud83d\\ude00"}}')
    assert ok.status_code == 201, ok.text
    assert ok.json()["data"]["e"] == "\U0001f600"
    patched = api.patch(f"{url}/ok", content=b'{"data": {"e": "\\ud800"}}', headers=MERGE)
    assert_status(patched, 400, "BadRequest")
    assert api.get(f"{url}/ok").json()["data"]["e"] == "\U0001f600"
    _reads_still_work(api, namespace)


def test_unknown_field_named_with_a_newline_gets_a_clean_warning(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    body = b'{"metadata": {"name": "nl"}, "data": {}, "a\\nb\\r\\u0000c": 1, "\xc3\xbcber": 2}'
    r = api.post(url, content=body, headers=JSON)
    assert r.status_code == 201, r.text
    warning = r.headers["Warning"]
    assert "\n" not in warning and "\r" not in warning
    assert warning.startswith('299 - "unknown field')
    assert "a b" in warning
    assert "über" in warning  # UTF-8 passes through, as Go's server sends it
    assert api.get(f"{url}/nl").status_code == 200


def _causes(body: dict[str, Any]) -> dict[str, str]:
    return {c["field"]: c["message"] for c in body["details"]["causes"]}


def test_integers_past_their_format_are_invalid(
    api: httpx.Client, namespace: str, build: Any
) -> None:
    url = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    for too_big in (2**31, 2**63, -(2**31) - 1):
        d = build.deployment("big")
        d["spec"]["replicas"] = too_big
        body = assert_status(api.post(url, json=d), 422, "Invalid")
        assert "spec.replicas" in _causes(body), body
        assert f"spec.replicas: Invalid value: {too_big}: must be" in body["message"]
    assert api.get(url).json()["items"] == []
    created = api.post(url, json=build.deployment("big"))
    assert created.status_code == 201, created.text
    current = created.json()
    current["spec"]["replicas"] = 2**31
    assert_status(api.put(f"{url}/big", json=current), 422, "Invalid")
    assert_status(
        api.patch(f"{url}/big", json={"spec": {"replicas": 2**63}}, headers=MERGE), 422, "Invalid"
    )
    scale = api.get(f"{url}/big/scale").json()
    scale["spec"]["replicas"] = 9223372036854775808
    assert api.put(f"{url}/big/scale", json=scale).status_code == 422
    assert (
        api.patch(f"{url}/big/scale", json={"spec": {"replicas": 2**40}}, headers=MERGE).status_code
        == 422
    )
    assert api.get(f"{url}/big").json()["spec"]["replicas"] == 1
    # int64 fields take int64 values, and no more.
    pods = f"/api/v1/namespaces/{namespace}/pods"
    p = build.pod("deadline")
    p["spec"]["activeDeadlineSeconds"] = 2**40
    assert api.post(pods, json=p).status_code == 201
    p = build.pod("deadline2")
    p["spec"]["activeDeadlineSeconds"] = 2**63
    body = assert_status(api.post(pods, json=p), 422, "Invalid")
    assert "spec.activeDeadlineSeconds" in _causes(body)


def test_quantity_too_large_for_json_is_invalid(
    api: httpx.Client, namespace: str, build: Any
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    raw = (
        b'{"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "i",'
        b' "resources": {"limits": {"cpu": 1e400}}}]}}'
    )
    body = assert_status(api.post(pods, content=raw, headers=JSON), 422, "Invalid")
    causes = _causes(body)
    assert (
        "quantities must match the regular expression"
        in causes["spec.containers[0].resources.limits[cpu]"]
    )
    for raw in (
        b'{"metadata": {"name": "n"}, "data": {"a": 1e400}}',
        b'{"metadata": {"name": "n"}, "data": {"a": NaN}}',
        b'{"metadata": {"name": "n"}, "data": {"a": Infinity}}',
    ):
        r = api.post(f"/api/v1/namespaces/{namespace}/configmaps", content=raw, headers=JSON)
        assert r.status_code in (400, 422), r.text
        assert r.json()["kind"] == "Status"
    assert api.get(pods).json()["items"] == []
    _reads_still_work(api, namespace)


WRONG_TYPES: list[tuple[str, str, dict[str, Any]]] = [
    ("/api/v1/namespaces/NS/pods", "metadata", {"metadata": "x"}),
    ("/api/v1/namespaces/NS/pods", "spec", {"metadata": {"name": "p"}, "spec": "x"}),
    (
        "/api/v1/namespaces/NS/pods",
        "spec.containers",
        {"metadata": {"name": "p"}, "spec": {"containers": "x"}},
    ),
    (
        "/api/v1/namespaces/NS/pods",
        "spec.tolerations",
        {"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": {"a": 1}}},
    ),
    (
        "/api/v1/namespaces/NS/pods",
        "metadata.labels",
        {"metadata": {"name": "p", "labels": ["a"]}, "spec": {}},
    ),
    ("/apis/apps/v1/namespaces/NS/deployments", "spec", {"metadata": {"name": "d"}, "spec": []}),
    (
        "/apis/apps/v1/namespaces/NS/deployments",
        "spec.template",
        {"metadata": {"name": "d"}, "spec": {"template": "x"}},
    ),
    ("/api/v1/namespaces/NS/services", "spec", {"metadata": {"name": "s"}, "spec": "x"}),
    (
        "/api/v1/namespaces/NS/services",
        "spec.ports",
        {"metadata": {"name": "s"}, "spec": {"ports": {"port": 80}}},
    ),
    ("/api/v1/namespaces/NS/configmaps", "data", {"metadata": {"name": "c"}, "data": ["x"]}),
    ("/api/v1/namespaces", "metadata", {"metadata": 7}),
    (
        "/api/v1/namespaces",
        "spec.finalizers",
        {"metadata": {"name": "n"}, "spec": {"finalizers": "x"}},
    ),
]


def test_wrongly_typed_fields_are_refused_before_anything_reads_them(
    api: httpx.Client, namespace: str
) -> None:
    for path, field, body in WRONG_TYPES:
        url = path.replace("NS", namespace)
        r = api.post(url, json=body)
        assert r.status_code == 400, (url, body, r.text)
        problem = assert_status(r, 400, "BadRequest")
        assert "json: cannot unmarshal" in problem["message"], problem
        assert f".{field} of type" in problem["message"], problem
    for resource in ("pods", "services", "configmaps"):
        assert api.get(f"/api/v1/namespaces/{namespace}/{resource}").json()["items"] == []
    _reads_still_work(api, namespace)


def test_wrong_types_in_patches_change_nothing(
    api: httpx.Client, namespace: str, build: Any
) -> None:
    url = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    assert api.post(url, json=build.deployment("t")).status_code == 201
    for headers, body in (
        (MERGE, {"spec": "x"}),
        (MERGE, {"metadata": {"labels": "x"}}),
        (SMP, {"spec": {"template": {"spec": {"containers": "x"}}}}),
        (JSON_PATCH, [{"op": "replace", "path": "/spec/replicas", "value": "three"}]),
        (JSON_PATCH, [{"op": "replace", "path": "/metadata", "value": 1}]),
    ):
        r = api.patch(f"{url}/t", json=body, headers=headers)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["kind"] == "Status"
    assert api.get(f"{url}/t").json()["spec"]["replicas"] == 1


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_deep_nesting_is_400_not_a_crash(api: httpx.Client, namespace: str, build: Any) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    deep = b'{"metadata": {"name": "deep"}, "x": ' + _deep(10_000) + b"}"
    problem = assert_status(api.post(url, content=deep, headers=JSON), 400, "BadRequest")
    assert "depth" in problem["message"]
    deep_list = b'{"metadata": {"name": "deep"}, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert_status(api.post(url, content=deep_list, headers=JSON), 400, "BadRequest")
    yaml_deep = b"metadata: {name: deep}\nx: " + b"[" * 10_000 + b"]" * 10_000 + b"\n"
    assert_status(api.post(url, content=yaml_deep, headers=YAML), 400, "BadRequest")
    yaml_block = b"metadata:\n  name: deep\nx:\n" + b"".join(
        b"  " * (i + 1) + b"k:\n" for i in range(1_000)
    )
    assert_status(api.post(url, content=yaml_block, headers=YAML), 400, "BadRequest")
    assert api.post(url, json={"metadata": {"name": "shallow"}}).status_code == 201
    assert_status(
        api.patch(f"{url}/shallow", content=b'{"data": ' + _deep(10_000) + b"}", headers=MERGE),
        400,
        "BadRequest",
    )
    patch_ops = b'[{"op": "add", "path": "/x", "value": ' + _deep(10_000) + b"}]"
    assert_status(
        api.patch(f"{url}/shallow", content=patch_ops, headers=JSON_PATCH), 400, "BadRequest"
    )
    assert_status(
        api.patch(f"{url}/shallow", content=b'{"data": ' + _deep(10_000) + b"}", headers=SMP),
        400,
        "BadRequest",
    )
    # A YAML alias bomb is refused rather than expanded.
    bomb = b"metadata: {name: bomb}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 12):
        bomb += (
            f"  a{i}: &a{i} [*a{i - 1 if i > 1 else ''}".encode()
            + b"".join(f", *a{i - 1 if i > 1 else ''}".encode() for _ in range(8))
            + b"]\n"
        )
    r = api.post(url, content=bomb.replace(b"*a0", b"*a"), headers=YAML)
    assert r.status_code == 400, r.text[:300]
    _reads_still_work(api, namespace)
    assert api.get("/readyz").status_code == 200


def test_limit_out_of_range_is_400(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    for limit in ("9223372036854775808", "1e30", "x", "99999999999999999999999999"):
        assert_status(api.get(url, params={"limit": limit}), 400, "BadRequest")
    assert api.get(url, params={"limit": "9223372036854775807"}).status_code == 200
    assert api.get(url, params={"limit": "-5"}).status_code == 200


def test_list_resource_version_is_checked(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    problem = assert_status(api.get(url, params={"resourceVersion": "garbage"}), 400, "BadRequest")
    assert "garbage" in problem["message"]
    assert_status(
        api.get(url, params={"resourceVersion": "garbage", "watch": "1"}), 400, "BadRequest"
    )
    first = api.post(url, json={"metadata": {"name": "v1"}, "data": {"k": "1"}}).json()
    api.put(f"{url}/v1", json={**first, "data": {"k": "2"}})
    current = int(api.get(url).json()["metadata"]["resourceVersion"])
    # Exact: the list as it was at that revision.
    old = api.get(
        url,
        params={
            "resourceVersion": first["metadata"]["resourceVersion"],
            "resourceVersionMatch": "Exact",
        },
    )
    assert old.status_code == 200, old.text
    assert [i["data"]["k"] for i in old.json()["items"]] == ["1"]
    future = str(current + 1000)
    for params in (
        {"resourceVersion": future, "resourceVersionMatch": "Exact"},
        {"resourceVersion": future, "resourceVersionMatch": "NotOlderThan"},
        {"resourceVersion": future},
    ):
        r = api.get(url, params=params, timeout=30)
        problem = assert_status(r, 504, "Timeout")
        assert problem["message"].startswith(f"Timeout: Too large resource version: {future}")
        assert problem["details"]["causes"] == [
            {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
        ]
        assert problem["details"]["retryAfterSeconds"] == 1
    assert_status(
        api.get(url, params={"resourceVersionMatch": "Sometimes", "resourceVersion": "1"}),
        422,
        "Invalid",
    )
    assert_status(api.get(url, params={"resourceVersionMatch": "Exact"}), 422, "Invalid")


def test_watch_from_a_future_revision_times_out_like_kubernetes(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    current = int(api.get(url).json()["metadata"]["resourceVersion"])
    r = api.get(url, params={"watch": "1", "resourceVersion": str(current + 1000)}, timeout=30)
    if r.status_code == 200:
        events = [line for line in r.text.splitlines() if line.strip()]
        import json as _json

        event = _json.loads(events[0])
        assert event["type"] == "ERROR"
        assert event["object"]["reason"] == "Timeout"
    else:
        problem = assert_status(r, 504, "Timeout")
        assert "Too large resource version" in problem["message"]


def test_strategic_merge_patch_with_an_unknown_directive_is_400(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    assert api.post(url, json={"metadata": {"name": "d"}, "data": {"a": "b"}}).status_code == 201
    for body in ({"$patch": "explode"}, {"metadata": {"$patch": "explode"}}):
        problem = assert_status(api.patch(f"{url}/d", json=body, headers=SMP), 400, "BadRequest")
        assert "unknown patch type: explode" in problem["message"]
    assert api.get(f"{url}/d").json()["data"] == {"a": "b"}


def test_objects_too_large_to_store_are_413(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    for size in (int(3.1 * 1024 * 1024), (5 * 1024 * 1024)):
        body = {"metadata": {"name": "big"}, "data": {"blob": "x" * size}}
        problem = assert_status(api.post(url, json=body), 413, "RequestEntityTooLarge")
        assert problem["message"].startswith("Request entity too large: ")
    assert api.get(f"{url}/big").status_code == 404
    # Growing an object past what etcd stores by a patch is refused the same way.
    body = {"metadata": {"name": "grow"}, "data": {"a": "x" * int(2.5 * 1024 * 1024)}}
    assert api.post(url, json=body).status_code == 201
    grow = {"data": {"b": "y" * int(2.5 * 1024 * 1024)}}
    assert_status(api.patch(f"{url}/grow", json=grow, headers=MERGE), 413, "RequestEntityTooLarge")
    assert "b" not in api.get(f"{url}/grow").json()["data"]
    # Anything within the body limit is stored and served.
    fits = {"metadata": {"name": "fits"}, "data": {"blob": "z" * int(2.9 * 1024 * 1024)}}
    assert api.post(url, json=fits).status_code == 201
    assert len(api.get(f"{url}/fits").json()["data"]["blob"]) == int(2.9 * 1024 * 1024)
    _reads_still_work(api, namespace)


def test_a_list_of_objects_at_the_size_limit_is_served(api: httpx.Client, namespace: str) -> None:
    """50 objects of 1.4 MiB: more than one gRPC answer from etcd may carry (64 MiB)."""
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    blob = "b" * (1400 * 1024)
    for i in range(50):
        r = api.post(url, json={"metadata": {"name": f"big-{i}"}, "data": {"blob": blob}})
        assert r.status_code == 201, r.text[:300]
    listed = api.get(url, timeout=120)
    assert listed.status_code == 200, listed.text[:300]
    assert len(listed.json()["items"]) == 50
    page = api.get(url, params={"limit": 45}, timeout=120).json()
    assert len(page["items"]) == 45
    rest = api.get(url, params={"limit": 45, "continue": page["metadata"]["continue"]}).json()
    assert [i["metadata"]["name"] for i in page["items"] + rest["items"]] == sorted(
        f"big-{i}" for i in range(50)
    )
    api.delete(url)


def test_field_manager_must_be_short_and_printable(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"metadata": {"name": "fm"}}
    problem = assert_status(
        api.post(url, params={"fieldManager": "a\nb"}, json=body), 422, "Invalid"
    )
    assert problem["message"].startswith('CreateOptions.meta.k8s.io "" is invalid: fieldManager')
    assert "invalid character U+000A (at position 1)" in problem["message"]
    assert_status(api.post(url, params={"fieldManager": "m" * 129}, json=body), 422, "Invalid")
    assert api.get(f"{url}/fm").status_code == 404
    assert api.post(url, params={"fieldManager": "m" * 128}, json=body).status_code == 201
    patched = api.patch(
        f"{url}/fm", params={"fieldManager": "x\x00"}, json={"data": {"a": "b"}}, headers=MERGE
    )
    assert_status(patched, 422, "Invalid")
    assert patched.json()["message"].startswith('PatchOptions.meta.k8s.io "" is invalid')


def test_null_fields_are_unset_as_go_decodes_them(
    api: httpx.Client, namespace: str, build: Any
) -> None:
    """`"replicas": null` is an unset replicas (defaulted to 1), never a stored null
    that breaks kubectl's table of every ReplicaSet."""
    url = f"/apis/apps/v1/namespaces/{namespace}/replicasets"
    rs = build.replicaset("nulls")
    rs["spec"]["replicas"] = None
    rs["spec"]["minReadySeconds"] = None
    rs["metadata"]["labels"] = None
    created = api.post(url, json=rs)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["replicas"] == 1
    assert "minReadySeconds" not in created.json()["spec"]
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    for listing in (url, "/apis/apps/v1/replicasets"):
        assert api.get(listing, headers=table).status_code == 200
    patched = api.patch(f"{url}/nulls", json={"spec": {"replicas": None}}, headers=JSON_PATCH)
    assert patched.status_code in (400, 422)  # a JSON patch must be a list
    merged = api.patch(
        f"{url}/nulls",
        content=b'[{"op": "replace", "path": "/spec/replicas", "value": null}]',
        headers=JSON_PATCH,
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["spec"]["replicas"] == 1
    assert api.get(url, headers=table).status_code == 200


def test_status_fields_the_tables_read_are_typed(api: httpx.Client, namespace: str) -> None:
    """A Service's loadBalancer or an Event's series of the wrong shape used to be
    stored, and then kubectl's table of every Service (or Event) answered 500."""
    svc = {"metadata": {"name": "lb"}, "spec": {"ports": [{"port": 80}]}}
    url = f"/api/v1/namespaces/{namespace}/services"
    created = api.post(url, json=svc)
    assert created.status_code == 201, created.text
    status = {**created.json(), "status": {"loadBalancer": 7}}
    assert_status(api.put(f"{url}/lb/status", json=status), 400, "BadRequest")
    event = {
        "metadata": {"name": "ev"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace},
        "reason": "R",
        "series": 3,
    }
    events = f"/api/v1/namespaces/{namespace}/events"
    assert_status(api.post(events, json=event), 400, "BadRequest")
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "ephemeralContainers": {"a": 1}},
    }
    assert_status(api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod), 400, "BadRequest")
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    for listing in ("/api/v1/services", "/api/v1/events", url, events):
        assert api.get(listing, headers=table).status_code == 200, listing
