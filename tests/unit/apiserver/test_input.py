"""Refusing bad input before anything reads it: the pure parts, table-tested."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from api import kinds  # noqa: F401  (registers every kind)
from api.resources import lookup
from apiserver import errors, patch, requests, responses, tls
from apiserver.registry import MAX_STORED_DEPTH, check_decoded, check_storable, nesting_depth


def refused(call: Any) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud800"}',
        b'{"\\udfff": 1}',
        b'{"kind": "\\ud83d"}',
        b'{"a": ["x", {"b": "y \\udc00"}]}',
    ],
)
def test_lone_surrogates_are_400(body: bytes) -> None:
    problem = refused(lambda: requests.decode(body, "application/json"))
    assert problem.code == 400
    assert "surrogate" in problem.message


def test_surrogate_pairs_and_other_unicode_pass() -> None:
    assert requests.decode(b'{"e": "\\ud83d\\ude00", "u": "\xc3\xbc"}', "application/json") == {
        "e": "\U0001f600",
        "u": "ü",
    }


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "application/json"),
        (b"[" * 101 + b"]" * 101, "application/json"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, "application/json"),
        (b"[" * 10_000 + b"]" * 10_000, "application/yaml"),
    ],
)
def test_nesting_past_the_limit_is_400(body: bytes, content_type: str) -> None:
    problem = refused(lambda: requests.decode(body, content_type))
    assert problem.code == 400
    assert "deeper than 100" in problem.message


def test_nesting_up_to_the_limit_is_fine() -> None:
    body = b"[" * requests.MAX_DEPTH + b"]" * requests.MAX_DEPTH
    assert requests.decode(body, "application/json") is not None


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_number_literals_are_400(literal: bytes) -> None:
    assert (
        refused(lambda: requests.decode(b'{"a": ' + literal + b"}", "application/json")).code == 400
    )


def test_yaml_alias_bomb_is_400() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    problem = refused(lambda: requests.decode("\n".join(lines).encode(), "application/yaml"))
    assert "excessive aliasing" in problem.message


def test_yaml_values_json_cannot_hold_become_json() -> None:
    got = requests.decode(
        b"when: 2024-01-02\n2: two\ntrue: yes\nbin: !!binary aGk=\nat: !!timestamp 2024-01-02\n",
        "application/yaml",
    )
    assert got == {
        "when": "2024-01-02",
        "2": "two",
        "true": True,
        "bin": "aGk=",
        "at": "2024-01-02",
    }
    json.dumps(got)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("-5", -5), ("9223372036854775807", 2**63 - 1), ("+7", 7)],
)
def test_int64_parameters(text: str, value: int) -> None:
    assert requests.parse_int64("limit", text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9223372036854775808", "value out of range"),
        ("9" * 5000, "value out of range"),
        ("1e30", "invalid syntax"),
        ("", "invalid syntax"),
        ("٣", "invalid syntax"),
        ("1.0", "invalid syntax"),
    ],
)
def test_int64_parameters_refused_as_kubernetes_words_it(text: str, reason: str) -> None:
    problem = refused(lambda: requests.parse_int64("limit", text))
    assert problem.code == 400
    assert problem.message == (
        f'limit: Invalid value: "{text}": strconv.ParseInt: parsing "{text}": {reason}'
    )


def test_resource_versions() -> None:
    assert requests.parse_resource_version("") == 0
    assert requests.parse_resource_version("0") == 0
    assert requests.parse_resource_version("42") == 42
    for bad in ("garbage", "-1", "1.5", "18446744073709551616"):
        assert refused(lambda bad=bad: requests.parse_resource_version(bad)).code == 400


@pytest.mark.parametrize(
    ("rv", "match", "cont", "messages"),
    [
        ("5", "Exact", "", []),
        ("5", "NotOlderThan", "", []),
        ("", "", "", []),
        ("", "Exact", "", ["resourceVersionMatch is forbidden unless resourceVersion is provided"]),
        ("0", "Exact", "", ['resourceVersionMatch "exact" is forbidden for resourceVersion "0"']),
        ("5", "Exact", "tok", ["resourceVersionMatch is forbidden when continue is provided"]),
        ("5", "Often", "", ['Unsupported value: "Often"']),
    ],
)
def test_list_options_rules(rv: str, match: str, cont: str, messages: list[str]) -> None:
    got = [str(p) for p in requests.list_options_problems(rv, match, cont)]
    assert len(got) == len(messages)
    for text, message in zip(got, messages, strict=True):
        assert message in text


def test_warning_header_is_always_a_valid_header_value() -> None:
    header = responses.warning_header(['unknown field "a\nb\r\x00c"', 'say "hi" \\ über'])
    assert header == (
        '299 - "unknown field \\"a b  c\\"", 299 - "say \\"hi\\" \\\\ '
        + "über".encode().decode("latin-1")
        + '"'
    )
    assert all(ord(c) >= 0x20 or c == "\t" for c in header)
    header.encode("latin-1")


def test_warnings_are_limited_as_kubernetes_limits_them() -> None:
    header = responses.warning_header(["w" * 100_000, "second"])
    assert len(header) < 4096 + 100
    assert header.startswith('299 - "' + "w" * 256 + '"')


def test_responses_with_a_surrogate_still_encode() -> None:
    body = responses.send({"a": "\ud800"}).body
    assert json.loads(body) == {"a": "\ud800"}


def test_unknown_strategic_merge_directive_is_400() -> None:
    problem = refused(
        lambda: patch.strategic_merge_patch(None, {"a": 1}, {"$patch": "explode", "b": 2})
    )
    assert problem.code == 400
    assert problem.message == "unknown patch type: explode in map: map[$patch:explode b:2]"
    assert patch.strategic_merge_patch(None, {"a": 1}, {"$patch": "merge", "b": 2}) == {
        "a": 1,
        "b": 2,
    }


def test_json_patch_copies_are_bounded() -> None:
    target = {"a": "x" * 1024 * 1024}
    ops = [{"op": "copy", "from": "/a", "path": f"/b{i}"} for i in range(20)]
    problem = refused(lambda: patch.json_patch(target, ops))
    assert problem.code == 422
    assert "copy" in problem.message


DEPLOYMENT = lookup("apps", "v1", "deployments")


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, **spec},
    }


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"metadata": "x"},
            "json: cannot unmarshal string into Go struct field Deployment.metadata "
            "of type v1.ObjectMeta",
        ),
        (
            deployment(replicas="3"),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas "
            "of type int32",
        ),
        (
            deployment(template={"spec": {"containers": {"name": "c"}}}),
            "json: cannot unmarshal object into Go struct field "
            "PodSpec.spec.template.spec.containers of type []v1.Container",
        ),
        (
            deployment(template={"metadata": {"labels": {"a": 1}}}),
            "json: cannot unmarshal number into Go struct field "
            "ObjectMeta.spec.template.metadata.labels of type string",
        ),
    ],
)
def test_wrong_types_are_400_in_gos_words(obj: dict[str, Any], message: str) -> None:
    problem = refused(lambda: check_decoded(DEPLOYMENT, obj))
    assert problem.code == 400
    assert problem.reason == "BadRequest"
    assert problem.message == (
        f'Deployment in version "v1" cannot be handled as a Deployment: {message}'
    )


@pytest.mark.parametrize("replicas", [2**31, -(2**31) - 1, 2**63, 1e10])
def test_integers_past_int32_are_invalid(replicas: Any) -> None:
    problem = refused(lambda: check_decoded(DEPLOYMENT, deployment(replicas=replicas)))
    assert problem.code == 422
    assert (
        f"spec.replicas: Invalid value: {int(replicas)}: must be between -2147483648 and "
        "2147483647, inclusive" in problem.message
    )


def test_decoding_normalizes_as_go_does() -> None:
    obj = deployment(replicas=3.0, template=None, paused=None)
    obj["metadata"]["labels"] = {"a": None}
    obj["metadata"]["finalizers"] = [None, "x"]
    check_decoded(DEPLOYMENT, obj)
    assert obj["spec"] == {"selector": {"matchLabels": {"a": "b"}}, "replicas": 3}
    assert isinstance(obj["spec"]["replicas"], int)
    assert obj["metadata"]["labels"] == {"a": ""}
    assert obj["metadata"]["finalizers"] == ["", "x"]


POD = lookup("", "v1", "pods")


@pytest.mark.parametrize("cpu", [float("inf"), "1e400", "1e999999999", "abc", "9Ei"])
def test_quantities_out_of_range_are_invalid(cpu: Any) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": cpu}}}]
        },
    }
    problem = refused(lambda: check_decoded(POD, pod))
    assert problem.code == 422
    assert "quantities must match the regular expression" in problem.message


def test_storable_objects() -> None:
    # Up to the embedded etcd's 4 MiB request limit, less the key and framing.
    check_storable("/registry/configmaps/ns/c", {"data": {"a": "x" * 3_000_000}})
    too_big = refused(
        lambda: check_storable("/registry/configmaps/ns/c", {"data": {"a": "x" * 4_200_000}})
    )
    assert too_big.code == 413
    assert too_big.message.startswith("Request entity too large: ")
    assert refused(lambda: check_storable("/k", {"a": float("nan")})).code == 400
    deep: Any = 1
    for _ in range(MAX_STORED_DEPTH + 1):
        deep = [deep]
    assert nesting_depth(deep, MAX_STORED_DEPTH) > MAX_STORED_DEPTH
    assert refused(lambda: check_storable("/k", {"a": deep})).code == 400


def test_client_certificates_verified_against_the_ca(tmp_path: Any) -> None:
    from cryptography import x509

    from apiserver import certs

    ca = certs.ensure_ca(tmp_path / "ca")
    other = certs.ensure_ca(tmp_path / "other")
    good = certs.ensure_client_cert(tmp_path / "ca", ca, "alice", "alice", ["g"])
    bad = certs.ensure_client_cert(tmp_path / "other", other, "mallory", "mallory", ["g"])
    cas = [x509.load_pem_x509_certificate(ca.cert.read_bytes())]
    now = datetime.datetime.now(datetime.UTC)

    def der(path: Any) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)

    assert tls.verified_client_cert(der(good.cert), cas, now)
    assert not tls.verified_client_cert(der(bad.cert), cas, now)
    assert not tls.verified_client_cert(der(good.cert), cas, now + datetime.timedelta(days=3650))
    assert not tls.verified_client_cert(b"not a certificate", cas, now)


def test_yaml_aliases_repeating_a_long_string_are_400() -> None:
    doc = "a: &a " + "x" * 100_000 + "\nb: [" + ", ".join(["*a"] * 1000) + "]\n"
    problem = refused(lambda: requests.decode(doc.encode(), "application/yaml"))
    assert "excessive aliasing" in problem.message


def test_a_body_of_many_strings_is_not_mistaken_for_aliasing() -> None:
    body = json.dumps({"data": {f"k{i}": "v" * 100 for i in range(20_000)}}).encode()
    assert len(requests.decode(body, "application/json")["data"]) == 20_000
    body_yaml = "data:\n" + "".join(f"  k{i}: {'v' * 100}\n" for i in range(3_000))
    assert len(requests.decode(body_yaml.encode(), "application/yaml")["data"]) == 3_000


def test_numbers_no_json_reader_can_hold_are_not_stored() -> None:
    check_storable("/k", {"status": {"conditions": [{"n": 10**300}]}})
    assert refused(lambda: check_storable("/k", {"status": {"x": 10**400}})).code == 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"metadata":{"name":"a","name":"b"},"data":{}}',  # compact, as clients write
        b'{"metadata": {"name": "a", "name": "b"}, "data": {}}',
    ],
)
def test_a_repeated_key_is_noticed_in_compact_and_spaced_json(body: bytes) -> None:
    obj, duplicates = requests._json_with_duplicates(body)
    assert duplicates == ["name"]
    assert obj["metadata"]["name"] == "b"


def test_compact_json_reads_as_the_standard_library_reads_it() -> None:
    body = b'{"a":1,"b":[1.5,"x\\u00e9",null,true],"c":{"d":-0.0,"e":1e-07}}'
    obj, duplicates = requests._json_with_duplicates(body)
    assert duplicates == [] and obj == json.loads(body)
