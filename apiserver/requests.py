"""Reading a request: its body and the query options each verb takes.

Everything a client can get wrong is turned into the `Status` kube-apiserver
answers with (400 for a malformed body or option, 413 for a body over the
limit, 415 for a media type we do not read), before any storage is touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from starlette.requests import Request

from api import events, fields
from api.resources import ResourceInfo
from api.selectors import FieldSelector, parse_field_selector, parse_label_selector

from . import errors, managed_fields, protobuf
from .registry import DeleteOptions, ListOptions, WriteOptions

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit on a request body
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
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large(MAX_BODY)
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, content_type: str) -> Any:
    """JSON or YAML into Python, or a 400 that says what was wrong."""
    if not body.strip():
        raise errors.bad_request("the request body is empty; an object was expected")
    if content_type in YAML_TYPES or content_type.endswith("+yaml"):
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error converting YAML to JSON: {_one_line(e)}") from e
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from e


def _json_with_duplicates(body: bytes) -> tuple[Any, list[str]]:
    """JSON, noting every key an object repeats (Go's strict decoder refuses them)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        return json.loads(body, object_pairs_hook=pairs), duplicates
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from e


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
        try:
            return protobuf.decode(await read_body(request))
        except protobuf.ProtobufError as e:
            raise errors.bad_request(str(e)) from e
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
    return WriteOptions(
        dry_run=dry_run(request),
        field_validation=validation,
        field_manager=managed_fields.manager_name(
            q.get("fieldManager", ""), request.headers.get("user-agent", "")
        ),
    )


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


def list_options(info: ResourceInfo, request: Request) -> ListOptions:
    q = request.query_params
    labels = None
    if q.get("labelSelector"):
        try:
            labels = parse_label_selector(q["labelSelector"])
        except ValueError as e:
            raise errors.bad_request(f"unable to parse requirement: {_one_line(e)}") from e
    limit_text = q.get("limit", "") or "0"
    try:
        limit = int(limit_text)
    except ValueError as e:
        raise errors.bad_request(f"invalid limit: {limit_text!r}") from e
    return ListOptions(
        labels=labels,
        fields=field_selector(info, q.get("fieldSelector", "")),
        limit=max(limit, 0),
        continue_token=q.get("continue", ""),
    )


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
    q = request.query_params
    grace: Any = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
    if grace is not None:
        try:
            grace = int(grace)
        except (TypeError, ValueError) as e:
            raise errors.bad_request(f"invalid gracePeriodSeconds: {grace!r}") from e
        if grace < 0:
            grace = 0
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
        dry_run=dry_run(request) or body_dry == ["All"],
    )
