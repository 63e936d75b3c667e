"""Reading a request: its body and the query options each verb takes.

Everything a client can get wrong is turned into the `Status` kube-apiserver
answers with (400 for a malformed body or option, 413 for a body over the
limit, 415 for a media type we do not read), before any storage is touched.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
import yaml
from starlette.requests import ClientDisconnect, Request

from api import events, fields
from api.errors import FieldError, forbidden, invalid, not_supported
from api.resources import ResourceInfo
from api.selectors import FieldSelector, parse_field_selector, parse_label_selector

from . import errors, managed_fields, protobuf
from .registry import DeleteOptions, ListOptions, WriteOptions

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit on a request body
# How deep a body may nest objects and lists. Go's decoder stops at 10,000;
# no Kubernetes object comes near 100 (a Deployment's deepest field is ~15),
# and a bound well under Python's recursion limit keeps every later walk
# (defaulting, validation, patching, managedFields) safe from RecursionError.
MAX_DEPTH = 100
# A decoded body holds no more containers and string characters than its bytes,
# plus slack: JSON cannot exceed that, so only YAML aliases expanding can (a
# "billion laughs", or one long string repeated through aliases).
ALIAS_SLACK = 10_000
JSON_TYPES = ("application/json", "")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it passes MAX_BODY."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise errors.too_large(MAX_BODY)
            chunks.append(chunk)
    except ClientDisconnect:
        # The client hung up before its body was complete: Go's reader says
        # `unexpected EOF`. Nobody reads the answer; it must not be a crash.
        raise errors.bad_request("unexpected EOF") from None
    return b"".join(chunks)


class _YamlLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it: timestamps stay the strings they were written as."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity; JSON (and Go) has no such literals.
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _too_deep() -> errors.ApiError:
    return errors.bad_request(
        f"the request body nests objects and lists deeper than {MAX_DEPTH} levels "
        "(json: exceeded max depth)"
    )


def decode(body: bytes, content_type: str) -> Any:
    """JSON or YAML into Python, or a 400 that says what was wrong."""
    if not body.strip():
        raise errors.bad_request("the request body is empty; an object was expected")
    if content_type in YAML_TYPES or content_type.endswith("+yaml"):
        try:
            loaded = yaml.load(body, Loader=_YamlLoader)  # a SafeLoader: no Python tags
        except RecursionError as e:
            raise _too_deep() from e
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error converting YAML to JSON: {_one_line(e)}") from e
        return check_tree(loaded, len(body))
    try:
        loaded = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError as e:
        raise _too_deep() from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a NaN literal
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from e
    return check_tree(loaded, len(body))


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate(where: str, text: str) -> errors.ApiError:
    shown = text.encode("utf-8", "backslashreplace").decode("ascii", "replace")[:80]
    return errors.bad_request(
        f"invalid Unicode in the request body: the {where} {shown!r} holds a lone UTF-16 "
        "surrogate, which is not a character"
    )


def _json_key(key: Any) -> str:
    """A YAML key as sigs.k8s.io/yaml writes it into JSON."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    raise errors.bad_request(f"error converting YAML to JSON: unsupported map key {key!r}")


def _json_scalar(value: Any) -> Any:
    """A value YAML can hold and JSON cannot, as the JSON sigs.k8s.io/yaml would make."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set | frozenset):
        return dict.fromkeys(sorted(_json_key(k) for k in value))
    if isinstance(value, tuple):
        return list(value)
    return value


def check_tree(value: Any, body_size: int) -> Any:
    """A decoded body made safe to hand on, or a 400.

    Refused: lone UTF-16 surrogates (in keys or values; the JSON escape
    `"\\ud800"` decodes to one, and it cannot be encoded again, so it would be
    stored and then break every read), nesting past MAX_DEPTH, and YAML
    aliases that expand past what the body could hold. YAML's own types
    (dates, binary, sets, non-string keys) become the JSON sigs.k8s.io/yaml gives.
    Walked with an explicit stack: the depth is what is being checked.
    """
    value = _json_scalar(value)
    budget = body_size + ALIAS_SLACK
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise _aliasing()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise _too_deep()
            if not all(isinstance(k, str) for k in node):
                items = [(_json_key(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            for key, sub in node.items():
                budget -= len(key)
                if _has_surrogate(key):
                    raise _surrogate("key", key)
                if isinstance(sub, dict | list):
                    stack.append((sub, depth + 1))
                elif isinstance(sub, str):
                    budget -= len(sub)
                    if _has_surrogate(sub):
                        raise _surrogate("value", sub)
                elif sub is not None and not isinstance(sub, int | float):
                    node[key] = sub = _json_scalar(sub)
                    stack.append((sub, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            for i, sub in enumerate(node):
                if isinstance(sub, dict | list):
                    stack.append((sub, depth + 1))
                elif isinstance(sub, str):
                    budget -= len(sub)
                    if _has_surrogate(sub):
                        raise _surrogate("value", sub)
                elif sub is not None and not isinstance(sub, int | float):
                    node[i] = sub = _json_scalar(sub)
                    stack.append((sub, depth + 1))
        elif isinstance(node, str) and _has_surrogate(node):
            raise _surrogate("value", node)
    if budget < 0:
        raise _aliasing()
    return value


def _aliasing() -> errors.ApiError:
    return errors.bad_request(
        "error converting YAML to JSON: yaml: document contains excessive aliasing"
    )


# orjson reads an integer past 64 bits as a float: text with a run of 19 digits is
# read by the standard library (as jsoncodec.loads decides).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _compact_json(body: bytes) -> dict[str, Any] | None:
    """The object `body` holds when orjson writes it back as exactly `body`, else None."""
    text = body.strip()
    if not text.startswith(b"{") or _LONG_DIGITS.search(text):
        return None
    try:
        loaded = orjson.loads(text)
    except ValueError:
        return None
    try:
        same = orjson.dumps(loaded) == text
    except TypeError:
        return None
    return loaded if same else None


def _json_with_duplicates(body: bytes) -> tuple[Any, list[str]]:
    """JSON, noting every key an object repeats (Go's strict decoder refuses them).

    Most bodies are compact JSON as a client library writes it (orjson's, or Go's
    without `<>&`): orjson reads those, and when writing back what it read gives the
    very bytes received, no key was repeated (a repeat is dropped on reading) and
    every value was read exactly. Any other body takes the standard library's
    reader, which sees every key: about a fifth of a small create's CPU, before.
    """
    fast = _compact_json(body)
    if fast is not None:
        return check_tree(fast, len(body)), []
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        loaded = json.loads(body, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except RecursionError as e:
        raise _too_deep() from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a NaN literal
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from e
    return check_tree(loaded, len(body)), duplicates


def _duplicates_policy(duplicates: list[str], opts: WriteOptions | None) -> None:
    if not duplicates or opts is None or opts.field_validation == "Ignore":
        return
    messages = [f'duplicate field "{d}"' for d in duplicates]
    if opts.field_validation == "Strict":
        raise errors.bad_request("strict decoding error: " + ", ".join(messages))
    opts.warnings.extend(messages)


async def object_body(request: Request, opts: WriteOptions | None = None) -> dict[str, Any]:
    content_type = media_type(request)
    if content_type == protobuf.MEDIA_TYPE:
        raw = await read_body(request)
        try:
            decoded = protobuf.decode(raw)
        except protobuf.ProtobufError as e:
            raise errors.bad_request(str(e)) from e
        except RecursionError as e:
            raise _too_deep() from e
        return check_tree(decoded, len(raw))  # type: ignore[no-any-return]
    if content_type not in JSON_TYPES and content_type not in YAML_TYPES:
        raise errors.unsupported_media_type(content_type)
    raw = await read_body(request)
    if content_type in JSON_TYPES and raw.strip():
        obj, duplicates = _json_with_duplicates(raw)
        _duplicates_policy(duplicates, opts)
    else:
        obj = decode(raw, content_type)
    if not isinstance(obj, dict):
        raise errors.bad_request(
            f"the body of the request must be an object, not {type(obj).__name__}"
        )
    return obj


def check_kind(info: ResourceInfo, obj: dict[str, Any], *, expect_kind: str = "") -> None:
    """A body names the kind the URL names, or nothing (then it is assumed)."""
    kind = obj.get("kind") or expect_kind or info.kind
    api_version = obj.get("apiVersion") or info.api_version
    want_kind = expect_kind or info.kind
    if kind != want_kind:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({info.api_version})"
            if api_version != info.api_version
            else f'the kind in the data ("{kind}") does not match the expected kind ("{want_kind}")'
        )
    if not expect_kind and api_version != info.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({info.api_version})"
        )
    obj["kind"], obj["apiVersion"] = kind, api_version


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true")


def dry_run(request: Request) -> bool:
    values = request.query_params.getlist("dryRun")
    for value in values:
        if value != "All":
            raise errors.bad_request(f'Invalid value: "{value}": supported values: "All"')
    return bool(values)


def write_options(request: Request) -> WriteOptions:
    q = request.query_params
    validation = q.get("fieldValidation", "Warn") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f"fieldValidation parameter unsupported: {validation!r}; "
            'supported values: "Ignore", "Warn", "Strict"'
        )
    problems = field_manager_problems(q.get("fieldManager", ""))
    if problems:
        kind = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(request.method, "PatchOptions")
        raise errors.invalid(kind, "meta.k8s.io", "", problems)
    return WriteOptions(
        dry_run=dry_run(request),
        field_validation=validation,
        field_manager=managed_fields.manager_name(
            q.get("fieldManager", ""), request.headers.get("user-agent", "")
        ),
    )


FIELD_MANAGER_MAX_LENGTH = 128


def field_manager_problems(manager: str) -> list:
    """Kubernetes' ValidateFieldManager: at most 128 characters, all printable
    (a manager's name is stored in every object it writes)."""
    problems = []
    if len(manager) > FIELD_MANAGER_MAX_LENGTH:
        problems.append(
            FieldError(
                "fieldManager",
                "FieldValueTooLong",
                f"may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes",
                manager,
            )
        )
    for i, char in enumerate(manager):
        if not char.isprintable():
            at = len(manager[:i].encode("utf-8", "surrogatepass"))
            problems.append(
                invalid(
                    "fieldManager",
                    manager,
                    f"invalid character U+{ord(char):04X} (at position {at})",
                )
            )
    return problems


def supported_fields(info: ResourceInfo) -> set[str]:
    return set(fields.field_labels(info, {"metadata": {"name": "", "namespace": ""}}))


def field_selector(info: ResourceInfo, text: str) -> FieldSelector | None:
    if not text:
        return None
    try:
        selector = parse_field_selector(text)
    except ValueError as e:
        raise errors.bad_request(f"unable to parse requirement: {_one_line(e)}") from e
    known = supported_fields(info)
    for field, _, _ in selector.requirements:
        if field not in known:
            raise errors.bad_request(
                f'"{field}" is not a known field selector: only "'
                + '", "'.join(sorted(known))
                + '"'
            )
    if info.group == "events.k8s.io":
        # Stored as core/v1 Events: select by the stored field names.
        selector = parse_field_selector(events.field_selector_to_core(text))
    return selector


def list_options(info: ResourceInfo, request: Request, *, watch: bool = False) -> ListOptions:
    q = request.query_params
    labels = None
    if q.get("labelSelector"):
        try:
            labels = parse_label_selector(q["labelSelector"])
        except ValueError as e:
            raise errors.bad_request(f"unable to parse requirement: {_one_line(e)}") from e
    limit = parse_int64("limit", q.get("limit", "") or "0")
    continue_token = q.get("continue", "")
    resource_version = q.get("resourceVersion", "")
    match = q.get("resourceVersionMatch", "")
    # A watch's resourceVersionMatch goes with sendInitialEvents (the watch code reads it).
    problems = [] if watch else list_options_problems(resource_version, match, continue_token)
    if problems:
        raise errors.invalid("ListOptions", "meta.k8s.io", "", problems)
    return ListOptions(
        labels=labels,
        fields=field_selector(info, q.get("fieldSelector", "")),
        limit=max(limit, 0),
        continue_token=continue_token,
        resource_version=parse_resource_version(resource_version),
        resource_version_match=match,
        from_cache="any" if resource_version == "0" else "fresh",
    )


_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_UNSIGNED = re.compile(r"^[0-9]+$")
INT64 = (-(2**63), 2**63 - 1)


def parse_int64(name: str, text: str) -> int:
    """An int64 query parameter, refused as kube-apiserver's parameter codec refuses it."""
    if not _INTEGER.match(text):
        reason = "invalid syntax"
    elif len(text) <= 20 and INT64[0] <= int(text) <= INT64[1]:
        return int(text)
    else:
        reason = "value out of range"
    raise errors.bad_request(
        f'{name}: Invalid value: "{text}": strconv.ParseInt: parsing "{text}": {reason}'
    )


def parse_resource_version(text: str) -> int:
    """A resourceVersion to list or watch from (0: any), as Kubernetes' versioner parses it."""
    if text in ("", "0"):
        return 0
    if _UNSIGNED.match(text) and len(text) <= 20 and int(text) < 2**64:
        return int(text)
    reason = "value out of range" if _UNSIGNED.match(text) else "invalid syntax"
    shown = json.dumps(text)
    raise errors.bad_request(
        f"resourceVersion: Invalid value: {shown}: strconv.ParseUint: parsing {shown}: {reason}"
    )


def list_options_problems(resource_version: str, match: str, continue_token: str) -> list:
    """ListOptions' own rules (kube-apiserver's ValidateListOptions)."""
    problems = []
    if match:
        if not resource_version:
            problems.append(
                forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
            )
        if continue_token:
            problems.append(
                forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                )
            )
        if match == "Exact" and resource_version == "0":
            problems.append(
                forbidden(
                    "resourceVersionMatch",
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                )
            )
        elif match not in ("Exact", "NotOlderThan"):
            problems.append(
                not_supported("resourceVersionMatch", match, ["Exact", "NotOlderThan", ""])
            )
    return problems


async def delete_options(request: Request) -> DeleteOptions:
    """DeleteOptions from the body (kubectl sends one) and the query, query last."""
    body: dict[str, Any] = {}
    raw = await read_body(request)
    if raw.strip() and media_type(request) == protobuf.MEDIA_TYPE:
        try:
            body = protobuf.decode(raw)
        except protobuf.ProtobufError as e:
            raise errors.bad_request(str(e)) from e
    elif raw.strip():
        decoded = decode(raw, media_type(request))
        if not isinstance(decoded, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        body = decoded
    return delete_options_from(body, request.query_params, dry_run(request))


def delete_options_from(
    body: dict[str, Any], q: Mapping[str, str], query_dry_run: bool = False
) -> DeleteOptions:
    """DeleteOptions from a decoded body (a DELETE's, or an Eviction's
    `deleteOptions`) and the query, the query winning."""
    grace: Any = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
    if isinstance(grace, float) and grace.is_integer():
        grace = int(grace)
    if isinstance(grace, int) and not isinstance(grace, bool):
        grace = str(grace)
    if grace is not None:
        if not isinstance(grace, str):
            raise errors.bad_request(f"invalid gracePeriodSeconds: {grace!r}")
        grace = max(parse_int64("gracePeriodSeconds", grace), 0)
    propagation = q.get("propagationPolicy", body.get("propagationPolicy"))
    if body.get("orphanDependents") is True or _flag(q, "orphanDependents"):
        propagation = propagation or "Orphan"
    if propagation not in (None, "Orphan", "Background", "Foreground"):
        raise errors.bad_request(
            f'Invalid value: "{propagation}": propagationPolicy must be one of '
            '"Orphan", "Background" or "Foreground"'
        )
    preconditions = body.get("preconditions") or {}
    if not isinstance(preconditions, dict):
        raise errors.bad_request("preconditions must be an object")
    body_dry = body.get("dryRun") or []
    return DeleteOptions(
        grace_period=grace,
        propagation=propagation,
        preconditions={k: str(v) for k, v in preconditions.items() if v},
        dry_run=query_dry_run or body_dry == ["All"],
    )
