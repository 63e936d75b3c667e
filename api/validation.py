"""Validation: every problem with an object, as Kubernetes field errors.

Three layers, all returning a list so that one 422 names every bad field:
the schema (JSON types, required fields, enums — from `api/kinds`), object
metadata (names, labels, annotations), and the rules of each kind (replicas
not negative, the selector matches the template, immutable fields stay).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import crd, cron, names, quantity
from .errors import (
    FieldError,
    GoValue,
    duplicate,
    forbidden,
    go_value,
    invalid,
    not_supported,
    required,
)
from .resources import ResourceInfo
from .schema import (
    INT_RANGES,
    JSON_TYPE,
    Schema,
    drop_unknown,
    go_type,
    json_kind,
    walk,
    zero_value,
)
from .selectors import selector_from_dict

# Names are DNS-1123 subdomains, except these kinds (as Kubernetes validates them).
NAME_RULES: dict[str, Callable[[str, str], list[FieldError]]] = {
    "Namespace": names.dns1123_label,
    "Service": names.dns1035_label,
    # RBAC names may hold ':' (system:node), as ValidateRBACName allows.
    "Role": names.path_segment_name,
    "ClusterRole": names.path_segment_name,
    "RoleBinding": names.path_segment_name,
    "ClusterRoleBinding": names.path_segment_name,
    "APIService": names.path_segment_name,  # and `<version>.<group>`: _apiservice
}


# -- schema-driven checks -------------------------------------------------------------


def unknown_fields(info: ResourceInfo, obj: dict[str, Any]) -> list[str]:
    return [path for kind, path, _ in walk(info.schema, obj, "") if kind == "unknown"]


def drop_unknown_fields(info: ResourceInfo, obj: dict[str, Any]) -> None:
    drop_unknown(info.schema, obj)


def _schema_errors(schema: Schema, value: Any, path: str) -> Iterator[FieldError]:
    """Types, required fields and enums, everywhere the schema describes."""
    if value is None or schema.type == "any":
        return
    for kind, at, bad in walk(schema, value, path):
        if kind == "type":
            yield FieldError(
                at,
                "FieldValueTypeInvalid",
                f"must be of type {JSON_TYPE.get(_schema_at(schema, at, path), 'a')}",
                bad,
            )
    yield from _required_and_enums(schema, value, path)


def _schema_at(root: Schema, at: str, base: str) -> str:
    """The type name of the schema at `at`, for the type error message."""
    node: Schema | None = root
    rest = at[len(base) :].lstrip(".")
    for part in rest.replace("[", ".[").split("."):
        if not part or node is None:
            continue
        if part.startswith("["):
            node = node.items if node.type == "array" else node.values
        else:
            node = node.fields.get(part)
    return node.type if node is not None else "any"


def _required_and_enums(schema: Schema, value: Any, path: str) -> Iterator[FieldError]:
    if schema.type == "object" and isinstance(value, dict):
        for name in schema.required:
            if value.get(name) in (None, "", [], {}) and not isinstance(
                value.get(name), bool | int
            ):
                yield required(f"{path}.{name}" if path else name)
            elif value.get(name) is None:
                yield required(f"{path}.{name}" if path else name)
        for key, sub in value.items():
            child = schema.fields.get(key)
            if child is not None:
                yield from _required_and_enums(child, sub, f"{path}.{key}" if path else key)
    elif schema.type == "array" and isinstance(value, list) and schema.items is not None:
        for i, sub in enumerate(value):
            yield from _required_and_enums(schema.items, sub, f"{path}[{i}]")
    elif schema.type == "map" and isinstance(value, dict) and schema.values is not None:
        for key, sub in value.items():
            yield from _required_and_enums(schema.values, sub, f"{path}[{key}]")
    elif schema.enum and isinstance(value, str) and value and value not in schema.enum:
        yield not_supported(path, value, list(schema.enum))


# -- decoding: what Go's typed decoder refuses, checked before anything reads the object --

QUANTITY_FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


@dataclass(frozen=True)
class TypeMismatch:
    """A value of the wrong JSON type for its field: what kube-apiserver's decoder refuses."""

    field: str  # Kubernetes' field path, with indices: spec.containers[0].ports
    message: str  # Go's wording: json: cannot unmarshal string into Go struct field ...


def check_decoded(
    schema: Schema, obj: dict[str, Any]
) -> tuple[list[TypeMismatch], list[FieldError]]:
    """Type mismatches (a 400, as Go's decoder) and out-of-range numbers (a 422).

    Normalizes in place the way decoding into Go types does, so nothing later
    meets a value of an unexpected type: a field given as `null` is dropped
    (but for timestamps, which Kubernetes writes as `null` when unset), `null`
    in a list or map becomes the zero value, and a whole-number float in an
    integer field (`3.0`, `1e3`) becomes an int.
    """
    mismatches: list[TypeMismatch] = []
    invalid_values: list[FieldError] = []
    _check(schema, obj, "", "", "", mismatches, invalid_values)
    return mismatches, invalid_values


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _struct_name(schema: Schema) -> str:
    return schema.ref.rsplit(".", 1)[-1] if schema.ref else ""


def _fix_number(schema: Schema, value: Any) -> Any:
    if (
        schema.type in ("integer", "int-or-string")
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    return value


def _check(
    schema: Schema,
    value: Any,
    path: str,
    go_path: str,
    struct: str,
    mismatches: list[TypeMismatch],
    invalid_values: list[FieldError],
) -> None:
    t = schema.type

    def mismatch() -> None:
        kind = json_kind(value)
        if kind == "number" and isinstance(value, float) and not math.isfinite(value):
            kind = f"number {value}"
        where = f"Go struct field {struct}.{go_path}" if struct else "Go value"
        mismatches.append(
            TypeMismatch(
                path,
                f"json: cannot unmarshal {kind} into {where} of type {go_type(schema)}",
            )
        )

    if t == "any":
        if (schema.format == "object" and not isinstance(value, dict)) or (
            schema.format == "array" and not isinstance(value, list)
        ):
            mismatch()
        return
    if t == "object":
        if not isinstance(value, dict):
            mismatch()
            return
        name = _struct_name(schema) or struct
        for key in list(value):
            child = schema.fields.get(key)
            if child is None:
                continue  # unknown fields are fieldValidation's business
            sub = value[key]
            if sub is None:
                # Go leaves a field that JSON gives as null unset (nil, or the zero
                # value, which encodes as absent); only a zero metav1.Time encodes as null.
                if child.type not in ("time", "any"):
                    del value[key]
                continue
            value[key] = sub = _fix_number(child, sub)
            _check(
                child, sub, _join(path, key), _join(go_path, key), name, mismatches, invalid_values
            )
        return
    if t in ("map", "array"):
        if not isinstance(value, dict if t == "map" else list):
            mismatch()
            return
        inner = schema.values if t == "map" else schema.items
        if inner is None:
            return
        keys = list(value) if t == "map" else range(len(value))
        for key in keys:
            sub = value[key]
            if sub is None:
                value[key] = sub = zero_value(inner)
                if sub is None:
                    continue
            value[key] = sub = _fix_number(inner, sub)
            _check(inner, sub, f"{path}[{key}]", go_path, struct, mismatches, invalid_values)
        return
    if t in ("string", "time"):
        if not isinstance(value, str):
            mismatch()
    elif t == "boolean":
        if not isinstance(value, bool):
            mismatch()
    elif t == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            mismatch()
        elif isinstance(value, float) and not math.isfinite(value):
            mismatch()
    elif t in ("integer", "int-or-string"):
        if t == "int-or-string" and isinstance(value, str):
            return
        if isinstance(value, bool) or not isinstance(value, int):
            mismatch()
            return
        low, high = INT_RANGES.get(
            schema.format if t == "integer" else "int32", INT_RANGES["int64"]
        )
        if not low <= value <= high:
            invalid_values.append(
                invalid(path, value, f"must be between {low} and {high}, inclusive")
            )
    elif t == "quantity":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            mismatch()
        elif not quantity_ok(value):
            invalid_values.append(invalid(path, value, QUANTITY_FORMAT))


_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)$")
MAX_QUANTITY = 2**63 - 1  # what Quantity.Value() can return


def quantity_ok(value: Any) -> bool:
    """A quantity Kubernetes can hold: well formed, finite, its value within int64.

    The exponent is looked at before the exact value is computed, so `1e999999999`
    costs nothing.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, str):
        exponent = _EXPONENT.search(value.strip())
        if exponent and abs(int(exponent.group(1))) > 40:
            return False
    if not quantity.is_valid(value):
        return False
    return abs(quantity.parse(value)) <= MAX_QUANTITY


# -- metadata ---------------------------------------------------------------------------


def _metadata(
    info: ResourceInfo, meta: dict[str, Any], path: str = "metadata", top: bool = True
) -> list[FieldError]:
    out: list[FieldError] = []
    if top:
        name = meta.get("name")
        if not name:
            if meta.get("generateName"):
                pass
            else:
                out.append(required(f"{path}.name", "name or generateName is required"))
        elif isinstance(name, str):
            rule = NAME_RULES.get(info.kind, names.dns1123_subdomain)
            out += rule(f"{path}.name", name)
    out += names.labels(f"{path}.labels", meta.get("labels"))
    out += names.annotations(f"{path}.annotations", meta.get("annotations"))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        if isinstance(ref, dict):
            for key in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(key):
                    out.append(required(f"{path}.ownerReferences[{i}].{key}"))
    controllers = [
        r for r in meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("controller")
    ]
    if len(controllers) > 1:
        out.append(
            invalid(
                f"{path}.ownerReferences",
                meta.get("ownerReferences"),
                "Only one reference can have Controller set to true",
            )
        )
    return out


# -- per kind -------------------------------------------------------------------------


def _port(field: str, value: Any) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= 65535:
        return [invalid(field, value, "must be between 1 and 65535, inclusive")]
    return []


def _resources(path: str, res: Any) -> list[FieldError]:
    out: list[FieldError] = []
    if not isinstance(res, dict):
        return out
    for part in ("limits", "requests"):
        for name, value in (res.get(part) or {}).items():
            at = f"{path}.{part}[{name}]"
            if not quantity_ok(value):
                out.append(
                    invalid(
                        at,
                        value,
                        "quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
            elif quantity.parse(value) < 0:
                out.append(invalid(at, value, "must be greater than or equal to 0"))
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    for name, value in requests.items():
        if name in limits and quantity_ok(value) and quantity_ok(limits[name]):
            if quantity.parse(value) > quantity.parse(limits[name]):
                out.append(
                    invalid(
                        f"{path}.requests",
                        value,
                        f"must be less than or equal to {name} limit of {limits[name]}",
                    )
                )
    return out


def _containers(path: str, containers: Any) -> list[FieldError]:
    out: list[FieldError] = []
    if not isinstance(containers, list):
        return out
    seen: set[str] = set()
    for i, c in enumerate(containers):
        at = f"{path}[{i}]"
        if not isinstance(c, dict):
            continue
        name = c.get("name")
        if isinstance(name, str) and name:
            out += names.dns1123_label(f"{at}.name", name)
            if name in seen:
                out.append(duplicate(f"{at}.name", name))
            seen.add(name)
        if not c.get("image"):
            out.append(required(f"{at}.image"))
        ports: set[tuple[Any, Any]] = set()
        port_names: set[str] = set()
        for j, p in enumerate(c.get("ports") or []):
            if not isinstance(p, dict):
                continue
            out += _port(f"{at}.ports[{j}].containerPort", p.get("containerPort"))
            if p.get("hostPort"):
                out += _port(f"{at}.ports[{j}].hostPort", p.get("hostPort"))
            key = (p.get("containerPort"), p.get("protocol", "TCP"))
            if key in ports:
                out.append(
                    duplicate(
                        f"{at}.ports[{j}]",
                        json.dumps({"containerPort": key[0], "protocol": key[1]}),
                    )
                )
            ports.add(key)
            if p.get("name"):
                if len(p["name"]) > 15:
                    out.append(
                        invalid(
                            f"{at}.ports[{j}].name", p["name"], "must be no more than 15 characters"
                        )
                    )
                if p["name"] in port_names:
                    out.append(duplicate(f"{at}.ports[{j}].name", p["name"]))
                port_names.add(p["name"])
        env_names = [e.get("name") for e in c.get("env") or [] if isinstance(e, dict)]
        for j, e in enumerate(env_names):
            if not e:
                out.append(required(f"{at}.env[{j}].name"))
        out += _resources(f"{at}.resources", c.get("resources"))
        for j, m in enumerate(c.get("volumeMounts") or []):
            if isinstance(m, dict) and ":" in str(m.get("mountPath", "")):
                out.append(
                    invalid(
                        f"{at}.volumeMounts[{j}].mountPath", m["mountPath"], "must not contain ':'"
                    )
                )
    return out


def _pod_spec(path: str, spec: Any, *, template: bool = False) -> list[FieldError]:
    if not isinstance(spec, dict):
        return []
    out: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        out.append(required(f"{path}.containers"))
    out += _containers(f"{path}.containers", containers)
    out += _containers(f"{path}.initContainers", spec.get("initContainers"))
    init_names = {c.get("name") for c in spec.get("initContainers") or [] if isinstance(c, dict)}
    for i, c in enumerate(spec.get("containers") or []):
        if isinstance(c, dict) and c.get("name") in init_names:
            out.append(duplicate(f"{path}.containers[{i}].name", c["name"]))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        out.append(
            invalid(
                f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"
            )
        )
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= 0:
        out.append(
            invalid(f"{path}.activeDeadlineSeconds", deadline, "must be greater than or equal to 1")
        )
    volume_names: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        if isinstance(v, dict) and isinstance(v.get("name"), str):
            out += names.dns1123_label(f"{path}.volumes[{i}].name", v["name"])
            if v["name"] in volume_names:
                out.append(duplicate(f"{path}.volumes[{i}].name", v["name"]))
            volume_names.add(v["name"])
    for kind in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(kind) or []):
            for j, m in enumerate((c or {}).get("volumeMounts") or []):
                if isinstance(m, dict) and m.get("name") and m["name"] not in volume_names:
                    out.append(
                        FieldError(
                            f"{path}.{kind}[{i}].volumeMounts[{j}].name",
                            "FieldValueNotFound",
                            "",
                            m["name"],
                        )
                    )
    if spec.get("hostname"):
        out += names.dns1123_label(f"{path}.hostname", str(spec["hostname"]))
    if spec.get("subdomain"):
        out += names.dns1123_label(f"{path}.subdomain", str(spec["subdomain"]))
    return out


def _pod(obj: dict[str, Any]) -> list[FieldError]:
    return _pod_spec("spec", obj.get("spec"))


def _selector_matches_template(spec: dict[str, Any], kind: str) -> list[FieldError]:
    out: list[FieldError] = []
    selector = spec.get("selector")
    if isinstance(selector, dict) and not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        out.append(
            invalid(
                "spec.selector", _go_selector(selector), f"empty selector is invalid for {kind}"
            )
        )
        return out
    template = spec.get("template")
    if not isinstance(selector, dict) or not isinstance(template, dict):
        return out
    labels = (template.get("metadata") or {}).get("labels") or {}
    try:
        matches = selector_from_dict(selector).matches(labels)
    except ValueError as e:
        return [invalid("spec.selector", _go_selector(selector), str(e))]
    if not matches:
        out.append(
            invalid(
                "spec.template.metadata.labels",
                _go_map(labels),
                "`selector` does not match template `labels`",
            )
        )
    return out


def _go_map(m: dict[str, Any]) -> GoValue:
    inner = ", ".join(f"{go_value(k)}:{go_value(v)}" for k, v in sorted(m.items()))
    return GoValue(f"map[string]string{{{inner}}}")


def _go_selector(sel: dict[str, Any]) -> GoValue:
    labels = _go_map(sel.get("matchLabels") or {}).text
    return GoValue(
        f"v1.LabelSelector{{MatchLabels:{labels}, "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
    )


def _replicas(spec: dict[str, Any]) -> list[FieldError]:
    r = spec.get("replicas")
    if isinstance(r, int) and not isinstance(r, bool) and r < 0:
        return [invalid("spec.replicas", r, "must be greater than or equal to 0")]
    return []


def _workload(obj: dict[str, Any], kind: str) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out = _replicas(spec)
    if not spec.get("selector"):
        out.append(required("spec.selector"))
    if kind == "Deployment" and not spec.get("template"):
        out.append(required("spec.template"))
    out += _selector_matches_template(spec, kind.lower())
    template = spec.get("template")
    if isinstance(template, dict):
        tmeta = template.get("metadata") or {}
        out += _metadata_template(tmeta)
        tspec = template.get("spec")
        out += _pod_spec("spec.template.spec", tspec, template=True)
        policy = (tspec or {}).get("restartPolicy", "Always") if isinstance(tspec, dict) else ""
        if policy and policy != "Always":
            out.append(not_supported("spec.template.spec.restartPolicy", policy, ["Always"]))
    msr = spec.get("minReadySeconds")
    if isinstance(msr, int) and msr < 0:
        out.append(invalid("spec.minReadySeconds", msr, "must be greater than or equal to 0"))
    if kind == "Deployment":
        out += _strategy(spec)
        for field in ("revisionHistoryLimit", "progressDeadlineSeconds"):
            v = spec.get(field)
            if isinstance(v, int) and v < 0:
                out.append(invalid(f"spec.{field}", v, "must be greater than or equal to 0"))
    return out


def _metadata_template(meta: dict[str, Any]) -> list[FieldError]:
    out = names.labels("spec.template.metadata.labels", meta.get("labels"))
    out += names.annotations("spec.template.metadata.annotations", meta.get("annotations"))
    return out


def _int_or_percent(field: str, value: Any) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return [invalid(field, value, "must be greater than or equal to 0")]
        return []
    if isinstance(value, str):
        if not value.endswith("%") or not value[:-1].isdigit():
            return [
                invalid(
                    field,
                    value,
                    "a valid percent string must be a numeric string "
                    "followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
                    "validation is '[0-9]+%')",
                )
            ]
        if int(value[:-1]) > 100:
            return [invalid(field, value, "must not be greater than 100%")]
    return []


def _strategy(spec: dict[str, Any]) -> list[FieldError]:
    strategy = spec.get("strategy") or {}
    out: list[FieldError] = []
    if strategy.get("type") == "Recreate" and strategy.get("rollingUpdate"):
        out.append(
            forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )
        )
    rolling = strategy.get("rollingUpdate") or {}
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    base = "spec.strategy.rollingUpdate"
    out += _int_or_percent(f"{base}.maxSurge", surge)
    out += _int_or_percent(f"{base}.maxUnavailable", unavailable)
    if surge in (0, "0%") and unavailable in (0, "0%"):
        out.append(
            invalid(f"{base}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")
        )
    return out


def _service(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out: list[FieldError] = []
    kind = spec.get("type", "ClusterIP")
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if kind == "ExternalName":
        if not spec.get("externalName"):
            out.append(required("spec.externalName"))
    elif not ports and not headless:
        out.append(required("spec.ports"))
    seen_names: set[str] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        if not isinstance(p, dict):
            continue
        at = f"spec.ports[{i}]"
        out += _port(f"{at}.port", p.get("port"))
        if len(ports) > 1 and not p.get("name"):
            out.append(required(f"{at}.name"))
        if p.get("name"):
            if p["name"] in seen_names:
                out.append(duplicate(f"{at}.name", p["name"]))
            seen_names.add(p["name"])
            out += names.dns1123_label(f"{at}.name", str(p["name"]))
        key = (p.get("port"), p.get("protocol", "TCP"))
        if key in seen_ports:
            out.append(duplicate(at, json.dumps({"port": key[0], "protocol": key[1]})))
        seen_ports.add(key)
        target = p.get("targetPort")
        if isinstance(target, int):
            out += _port(f"{at}.targetPort", target)
        if p.get("nodePort") and kind not in ("NodePort", "LoadBalancer"):
            out.append(forbidden(f"{at}.nodePort", "may not be used when `type` is 'ClusterIP'"))
    if spec.get("selector") is not None:
        out += names.labels("spec.selector", spec.get("selector"))
    return out


def _config(obj: dict[str, Any]) -> list[FieldError]:
    return names.config_keys("data", obj.get("data")) + names.config_keys(
        "binaryData", obj.get("binaryData")
    )


def _lease(obj: dict[str, Any]) -> list[FieldError]:
    d = (obj.get("spec") or {}).get("leaseDurationSeconds")
    if isinstance(d, int) and d <= 0:
        return [invalid("spec.leaseDurationSeconds", d, "must be greater than 0")]
    return []


def _endpoint_slice(obj: dict[str, Any]) -> list[FieldError]:
    if not obj.get("addressType"):
        return [required("addressType")]
    return []


# -- batch/v1, DaemonSet, StatefulSet, ReplicationController ---------------------------


def _non_negative(spec: dict[str, Any], fields: tuple[str, ...], base: str) -> list[FieldError]:
    out = []
    for field in fields:
        v = spec.get(field)
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            out.append(invalid(f"{base}.{field}", v, "must be greater than or equal to 0"))
    return out


def _job_spec(spec: Any, base: str, *, generated_selector: bool) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required(base)]
    out = _non_negative(
        spec,
        ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"),
        base,
    )
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= 0:
        out.append(
            invalid(f"{base}.activeDeadlineSeconds", deadline, "must be greater than or equal to 1")
        )
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        out.append(required(f"{base}.completions", "when completion mode is Indexed"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*out, required(f"{base}.template")]
    out += _metadata_template(template.get("metadata") or {})
    tspec = template.get("spec")
    out += _pod_spec(f"{base}.template.spec", tspec, template=True)
    policy = (tspec or {}).get("restartPolicy") if isinstance(tspec, dict) else None
    if policy not in ("OnFailure", "Never"):
        out.append(
            not_supported(
                f"{base}.template.spec.restartPolicy", policy or "", ["OnFailure", "Never"]
            )
        )
    if spec.get("podFailurePolicy") and policy not in (None, "Never"):
        out.append(
            invalid(
                f"{base}.template.spec.restartPolicy",
                policy,
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    if generated_selector and isinstance(spec.get("selector"), dict):
        out += _selector_matches_template(
            {"selector": spec["selector"], "template": template}, "job"
        )
    return out


def _job(obj: dict[str, Any]) -> list[FieldError]:
    return _job_spec(obj.get("spec"), "spec", generated_selector=True)


def _cronjob(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out: list[FieldError] = []
    name = (obj.get("metadata") or {}).get("name") or ""
    if len(name) > 52:  # the Job name adds "-" and up to 10 digits, within 63
        out.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    schedule = spec.get("schedule")
    if isinstance(schedule, str):
        try:
            cron.parse(schedule)
        except cron.CronError as e:
            out.append(invalid("spec.schedule", schedule, str(e)))
    if spec.get("timeZone") is not None:
        try:
            cron.zone(str(spec["timeZone"]))
        except cron.CronError as e:
            out.append(invalid("spec.timeZone", spec["timeZone"], str(e)))
    out += _non_negative(
        spec,
        ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"),
        "spec",
    )
    template = spec.get("jobTemplate")
    if isinstance(template, dict):
        out += _job_spec(template.get("spec"), "spec.jobTemplate.spec", generated_selector=False)
    return out


def _daemonset(obj: dict[str, Any]) -> list[FieldError]:
    out = _workload(obj, "DaemonSet")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return out
    out += _non_negative(spec, ("revisionHistoryLimit",), "spec")
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    base = "spec.updateStrategy.rollingUpdate"
    if strategy.get("type") == "OnDelete" and strategy.get("rollingUpdate"):
        out.append(forbidden(base, "may not be specified when strategy `type` is 'OnDelete'"))
    out += _int_or_percent(f"{base}.maxSurge", rolling.get("maxSurge"))
    out += _int_or_percent(f"{base}.maxUnavailable", rolling.get("maxUnavailable"))
    if (
        strategy.get("type", "RollingUpdate") == "RollingUpdate"
        and rolling.get("maxSurge", 0) in (0, "0%")
        and rolling.get("maxUnavailable", 1) in (0, "0%")
    ):
        out.append(
            invalid(
                f"{base}.maxUnavailable",
                rolling.get("maxUnavailable"),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return out


def _statefulset(obj: dict[str, Any]) -> list[FieldError]:
    # Mounts may name a volumeClaimTemplate: each pod gets that volume from its claim.
    view = json.loads(json.dumps(obj))
    tspec = ((view.get("spec") or {}).get("template") or {}).get("spec")
    if isinstance(tspec, dict):
        for claim in (view.get("spec") or {}).get("volumeClaimTemplates") or []:
            cname = (
                ((claim or {}).get("metadata") or {}).get("name")
                if isinstance(claim, dict)
                else None
            )
            if cname and not any(v.get("name") == cname for v in tspec.get("volumes") or []):
                tspec.setdefault("volumes", []).append(
                    {"name": cname, "persistentVolumeClaim": {"claimName": cname}}
                )
    out = _workload(view, "StatefulSet")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return out
    out += _non_negative(spec, ("revisionHistoryLimit",), "spec")
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type") == "OnDelete" and strategy.get("rollingUpdate"):
        out.append(
            invalid(
                "spec.updateStrategy.rollingUpdate",
                "",
                "only allowed for updateStrategy 'RollingUpdate'",
            )
        )
    out += _non_negative(rolling, ("partition",), "spec.updateStrategy.rollingUpdate")
    claim_names: set[str] = set()
    for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        cname = (
            ((claim or {}).get("metadata") or {}).get("name") if isinstance(claim, dict) else None
        )
        if not cname:
            out.append(required(f"spec.volumeClaimTemplates[{i}].metadata.name"))
        elif cname in claim_names:
            out.append(duplicate(f"spec.volumeClaimTemplates[{i}].metadata.name", cname))
        else:
            claim_names.add(cname)
    return out


def _replication_controller(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out = _replicas(spec)
    selector = spec.get("selector") or {}
    if not selector:
        out.append(required("spec.selector"))
    out += names.labels("spec.selector", selector)
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*out, required("spec.template")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        out.append(
            invalid(
                "spec.template.metadata.labels",
                _go_map(labels),
                "`selector` does not match template `labels`",
            )
        )
    out += _metadata_template(template.get("metadata") or {})
    tspec = template.get("spec")
    out += _pod_spec("spec.template.spec", tspec, template=True)
    policy = (tspec or {}).get("restartPolicy", "Always") if isinstance(tspec, dict) else ""
    if policy and policy != "Always":
        out.append(not_supported("spec.template.spec.restartPolicy", policy, ["Always"]))
    return out


def _controller_revision(obj: dict[str, Any]) -> list[FieldError]:
    rev = obj.get("revision")
    if isinstance(rev, int) and rev < 0:
        return [invalid("revision", rev, "must be greater than or equal to 0")]
    return []


def _pvc(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out: list[FieldError] = []
    if not spec.get("accessModes"):
        out.append(required("spec.accessModes", "at least 1 access mode is required"))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        out.append(required("spec.resources[storage]"))
    return out


_VOLUME_SOURCES = ("hostPath", "local", "nfs", "csi")


def _pv(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out: list[FieldError] = []
    if not spec.get("accessModes"):
        out.append(required("spec.accessModes"))
    if (spec.get("capacity") or {}).get("storage") is None:
        out.append(required("spec.capacity"))
    sources = [s for s in _VOLUME_SOURCES if spec.get(s)]
    if not sources:
        out.append(required("spec", "must specify a volume type"))
    elif len(sources) > 1:
        out.append(forbidden("spec." + sources[1], "may not specify more than 1 volume type"))
    if spec.get("local") and not spec.get("nodeAffinity"):
        out.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    return out


def _storage_class(obj: dict[str, Any]) -> list[FieldError]:
    if not obj.get("provisioner"):
        return [required("provisioner")]
    return []


def _hpa(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    out: list[FieldError] = []
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        out.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if isinstance(high, int) and isinstance(low, int) and high < low:
        out.append(
            invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`")
        )
    ref = spec.get("scaleTargetRef") or {}
    for field in ("kind", "name"):
        if not ref.get(field):
            out.append(required(f"spec.scaleTargetRef.{field}"))
    return out


def _apiservice(obj: dict[str, Any]) -> list[FieldError]:
    """kube-aggregator's ValidateAPIService."""
    spec = obj.get("spec") or {}
    group, version = str(spec.get("group") or ""), str(spec.get("version") or "")
    out: list[FieldError] = []
    name = (obj.get("metadata") or {}).get("name")
    wanted = f"{version}.{group}"
    if name and name != wanted:
        out.append(
            invalid("metadata.name", name, f'must be `spec.version+"."+spec.group`: "{wanted}"')
        )
    if not group and version != "v1":
        out.append(
            required("spec.group", "only v1 may have an empty group and it better be legacy kube")
        )
    if group:
        out += names.dns1123_subdomain("spec.group", group)
    out += names.dns1035_label("spec.version", version)
    gpm, vp = spec.get("groupPriorityMinimum") or 0, spec.get("versionPriority") or 0
    if not 0 < gpm <= 20000:
        out.append(
            invalid("spec.groupPriorityMinimum", gpm, "must be positive and less than 20000")
        )
    if not 0 < vp <= 1000:
        out.append(invalid("spec.versionPriority", vp, "must be positive and less than 1000"))
    service = spec.get("service")
    if not service:
        if spec.get("caBundle"):
            out.append(invalid("spec.caBundle", "", "local APIServices may not have a caBundle"))
        if spec.get("insecureSkipTLSVerify"):
            out.append(
                invalid(
                    "spec.insecureSkipTLSVerify",
                    True,
                    "local APIServices may not have insecureSkipTLSVerify",
                )
            )
        return out
    if not service.get("namespace"):
        out.append(required("spec.service.namespace", ""))
    if not service.get("name"):
        out.append(required("spec.service.name", ""))
    port = service.get("port", 443)
    if not 0 < port <= 65535:
        out.append(invalid("spec.service.port", port, "port is not valid: must be 1-65535"))
    if spec.get("insecureSkipTLSVerify") and spec.get("caBundle"):
        out.append(
            invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present")
        )
    return out


KIND_RULES: dict[tuple[str, str], Callable[[dict[str, Any]], list[FieldError]]] = {
    ("apiregistration.k8s.io", "APIService"): _apiservice,
    ("", "Pod"): _pod,
    ("apps", "Deployment"): lambda o: _workload(o, "Deployment"),
    ("apps", "ReplicaSet"): lambda o: _workload(o, "ReplicaSet"),
    ("", "Service"): _service,
    ("", "ConfigMap"): _config,
    ("", "Secret"): _config,
    ("coordination.k8s.io", "Lease"): _lease,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cronjob,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "ControllerRevision"): _controller_revision,
    ("", "ReplicationController"): _replication_controller,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "PersistentVolume"): _pv,
    ("storage.k8s.io", "StorageClass"): _storage_class,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd.validate_crd,
}


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for e in errors:
        key = (e.field, e.reason, e.detail)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def validate_create(info: ResourceInfo, obj: dict[str, Any]) -> list[FieldError]:
    out = list(_schema_errors(info.schema, obj, ""))
    type_errors = {e.field for e in out if e.reason == "FieldValueTypeInvalid"}
    out += _metadata(info, obj.get("metadata") or {})
    rule = KIND_RULES.get((info.group, info.kind))
    if rule is not None and not type_errors:
        out += rule(obj)
    return _dedupe(out)


# -- updates: immutable fields --------------------------------------------------------------

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_mutable_view(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with the fields an update may change blanked out."""
    view = json.loads(json.dumps(spec))
    for kind in ("containers", "initContainers"):
        for c in view.get(kind) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    view.pop("activeDeadlineSeconds", None)
    view.pop("tolerations", None)
    return view


def _pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    ns, os_ = new.get("spec") or {}, old.get("spec") or {}
    if _pod_spec_mutable_view(ns) != _pod_spec_mutable_view(os_):
        return [forbidden("spec", POD_UPDATE_FORBIDDEN)]
    old_tolerations = os_.get("tolerations") or []
    new_tolerations = ns.get("tolerations") or []
    if any(t not in new_tolerations for t in old_tolerations):
        return [
            forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            )
        ]
    return []


def _immutable(field: str, new: Any, old: Any) -> list[FieldError]:
    if new != old:
        return [
            invalid(
                field, new if not isinstance(new, dict) else _go_selector(new), "field is immutable"
            )
        ]
    return []


def _job_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    ns, os_ = new.get("spec") or {}, old.get("spec") or {}
    out = _immutable("spec.selector", ns.get("selector"), os_.get("selector"))
    out += _immutable("spec.completionMode", ns.get("completionMode"), os_.get("completionMode"))
    if ns.get("completions") != os_.get("completions") and ns.get("completionMode") != "Indexed":
        out += _immutable("spec.completions", ns.get("completions"), os_.get("completions"))
    # The pod template may change only while the Job is suspended (to fit a queue).
    if ns.get("template") != os_.get("template") and not os_.get("suspend"):
        out.append(
            invalid("spec.template", GoValue("core.PodTemplateSpec{...}"), "field is immutable")
        )
    return out


STATEFULSET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def _statefulset_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    ns, os_ = new.get("spec") or {}, old.get("spec") or {}
    strip = lambda spec: {k: v for k, v in spec.items() if k not in STATEFULSET_MUTABLE}  # noqa: E731
    if strip(ns) != strip(os_):
        return [
            forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden",
            )
        ]
    return []


def _controller_revision_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    if new.get("data") != old.get("data"):
        return [invalid("data", GoValue("runtime.RawExtension{...}"), "field is immutable")]
    return []


def _replication_controller_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return []  # its selector may change, unlike a ReplicaSet's


_WORKLOAD_UPDATES: dict[
    tuple[str, str], Callable[[dict[str, Any], dict[str, Any]], list[FieldError]]
] = {
    ("batch", "Job"): _job_update,
    ("apps", "StatefulSet"): _statefulset_update,
    ("apps", "ControllerRevision"): _controller_revision_update,
    ("", "ReplicationController"): _replication_controller_update,
}


def validate_update(
    info: ResourceInfo, new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    out = validate_create(info, new)
    key = (info.group, info.kind)
    if key == ("", "Pod"):
        out += _pod_update(new, old)
    elif key in _WORKLOAD_UPDATES:
        out += _WORKLOAD_UPDATES[key](new, old)
    elif key in (("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "DaemonSet")):
        out += _immutable(
            "spec.selector",
            (new.get("spec") or {}).get("selector"),
            (old.get("spec") or {}).get("selector"),
        )
    elif key in (("", "ConfigMap"), ("", "Secret")) and old.get("immutable"):
        for field in ("data", "binaryData", "immutable"):
            if new.get(field) != old.get(field):
                out.append(forbidden(field, "field is immutable when `immutable` is set"))
    elif key == ("discovery.k8s.io", "EndpointSlice"):
        out += _immutable("addressType", new.get("addressType"), old.get("addressType"))
    return _dedupe(out)


def validate_status_update(
    info: ResourceInfo, new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    out = list(_schema_errors(info.schema, new, ""))
    out += _metadata(info, new.get("metadata") or {})
    return _dedupe(out)
