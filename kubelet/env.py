"""A container's environment, computed the way the kubelet's makeEnvironmentVariables does.

Order of work (Kubernetes' own): `envFrom` sources first (ConfigMaps and
Secrets, with their prefix; keys that are not valid variable names are
skipped and reported), then each `env` entry in declared order, which may
override what `envFrom` gave. A literal `value` has its `$(VAR)` references
expanded against the variables defined so far and then the service variables;
a reference that resolves to nothing stays as written, and `$$` escapes a `$`.
Service variables (`FOO_SERVICE_HOST`, ...) come first in the list, except
those the pod defines itself: its own always win.

Everything here is pure: objects come in through `get_configmap` and
`get_secret`, so the kubelet can serve them from its informer caches and tests
from dicts. A failure is an `EnvError` whose message is what a user sees in
the container's `CreateContainerConfigError` waiting state.

The field and resource helpers (`pod_field_value`, `container_resource_value`)
are shared with the downwardAPI volume, which exposes the same values as files.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable
from typing import Any

from api import quantity

GetObject = Callable[[str, str], "dict[str, Any] | None"]


class EnvError(Exception):
    """Why a container's environment could not be built (CreateContainerConfigError)."""


# utilvalidation.IsEnvVarName: what envFrom keys must look like to be kept.
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def is_env_var_name(name: str) -> bool:
    """Kubernetes' IsEnvVarName: C-ish identifier with dots and dashes, never '.', '..', '..x'."""
    return bool(_ENV_VAR_NAME.match(name)) and not name.startswith("..") and name != "."


# ---------------------------------------------------------------- $(VAR) expansion


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """third_party/forked/golang/expansion.Expand, character for character.

    `$(NAME)` becomes mapping(NAME); `$$` becomes `$`; a `$` followed by anything
    else, or an unclosed `$(`, is kept as written.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                read, is_var, advance = "$", False, 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    read, is_var, advance = "$(", False, 1
                else:
                    read, is_var, advance = rest[1:close], True, close + 1
            else:
                read, is_var, advance = "$" + rest[0], False, 1
            out.append(mapping(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def mapping_for(*contexts: dict[str, str]) -> Callable[[str], str]:
    """expansion.MappingFuncFor: the first context that has the name wins; else `$(NAME)`."""

    def mapping(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"

    return mapping


# ---------------------------------------------------------------- service links


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _service_vars(service: dict[str, Any]) -> list[tuple[str, str]]:
    """envvars.FromServices for one service: the Kubernetes and the Docker-link variables."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    ports = spec.get("ports") or []
    if ip in ("", "None") or not ports:
        return []
    prefix = _env_name(service["metadata"]["name"])
    result = [
        (f"{prefix}_SERVICE_HOST", ip),
        (f"{prefix}_SERVICE_PORT", str(ports[0]["port"])),
    ]
    for port in ports:
        if port.get("name"):
            result.append((f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}", str(port["port"])))
    host = f"[{ip}]" if ":" in ip else ip
    for i, port in enumerate(ports):
        protocol = port.get("protocol") or "TCP"
        url = f"{protocol.lower()}://{host}:{port['port']}"
        if i == 0:
            result.append((f"{prefix}_PORT", url))
        port_prefix = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
        result += [
            (port_prefix, url),
            (f"{port_prefix}_PROTO", protocol.lower()),
            (f"{port_prefix}_PORT", str(port["port"])),
            (f"{port_prefix}_ADDR", ip),
        ]
    return result


def service_env_vars(
    services: list[dict[str, Any]], namespace: str, *, enable_service_links: bool = True
) -> dict[str, str]:
    """The service variables a pod in `namespace` gets (getServiceEnvVarMap).

    The `kubernetes` service of the default namespace is always included, even
    with enableServiceLinks false; the services of the pod's own namespace only
    when it is true, and one of them named `kubernetes` wins over the default's.
    Services without a cluster IP (headless, ExternalName) give nothing.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for service in services:
        meta = service.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if ns == namespace and enable_service_links:
            chosen[name] = service
        elif ns == "default" and name == "kubernetes":
            chosen.setdefault(name, service)
    result: dict[str, str] = {}
    for name in sorted(chosen):
        result.update(_service_vars(chosen[name]))
    return result


# ---------------------------------------------------------------- fieldRef


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}  # fmt: skip


def go_quote(text: str) -> str:
    """Go's strconv.Quote (the %q verb): escapes, and non-printable runes as \\x, \\u, \\U."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _format_map(values: dict[str, str]) -> str:
    """fieldpath.FormatMap: sorted `key="value"` lines, values quoted as Go's %q does."""
    return "\n".join(f"{k}={go_quote(str(values[k]))}" for k in sorted(values))


def _split_subscript(path: str) -> tuple[str, str] | None:
    """fieldpath.SplitMaybeSubscriptedPath: `metadata.labels['app']` -> (path, key)."""
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def pod_field_value(
    pod: dict[str, Any],
    field_path: str,
    *,
    api_version: str = "v1",
    node_ip: str = "",
    pod_ips: list[str] | None = None,
) -> str:
    """A downward API `fieldRef` value (podFieldSelectorRuntimeValue, ExtractFieldPathAsString)."""
    if api_version not in ("", "v1"):
        raise EnvError(f"unsupported pod version: {api_version}")
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if pod_ips is None:
        status = pod.get("status") or {}
        pod_ips = [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")]
        if not pod_ips and status.get("podIP"):
            pod_ips = [status["podIP"]]
    split = _split_subscript(field_path)
    if split is not None:
        head, key = split
        if head == "metadata.annotations":
            return str((meta.get("annotations") or {}).get(key, ""))
        if head == "metadata.labels":
            return str((meta.get("labels") or {}).get(key, ""))
        raise EnvError(f"field label not supported: {head}")
    simple: dict[str, Callable[[], str]] = {
        "metadata.name": lambda: meta.get("name", ""),
        "metadata.namespace": lambda: meta.get("namespace", ""),
        "metadata.uid": lambda: meta.get("uid", ""),
        "metadata.labels": lambda: _format_map(meta.get("labels") or {}),
        "metadata.annotations": lambda: _format_map(meta.get("annotations") or {}),
        "spec.nodeName": lambda: spec.get("nodeName", ""),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName", ""),
        "status.hostIP": lambda: node_ip,
        "status.hostIPs": lambda: node_ip,
        "status.podIP": lambda: pod_ips[0] if pod_ips else "",
        "status.podIPs": lambda: ",".join(pod_ips or []),
    }
    if field_path not in simple:
        raise EnvError(f"field label not supported: {field_path}")
    return simple[field_path]()


# ---------------------------------------------------------------- resourceFieldRef


def host_allocatable() -> dict[str, str]:
    """This machine's cpu and memory, the fallback when the caller gives no node allocatable."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": str(os.cpu_count() or 1), "memory": str(memory)}


def container_resource_value(
    resource_field_ref: dict[str, Any],
    pod: dict[str, Any],
    container: dict[str, Any] | None,
    *,
    node_allocatable: dict[str, Any] | None = None,
) -> str:
    """A `resourceFieldRef` value: ceil(quantity / divisor), cpu in the divisor's millis.

    A missing limit reads as the node's allocatable (defaultPodLimitsForDownwardAPI);
    a missing request reads as 0.
    """
    name = resource_field_ref.get("containerName") or ""
    if name:
        spec = pod.get("spec") or {}
        everyone = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
        container = next((c for c in everyone if c.get("name") == name), None)
        if container is None:
            raise EnvError(f"container {name} not found")
    if container is None:
        raise EnvError("resourceFieldRef needs a containerName here")
    resource = resource_field_ref.get("resource", "")
    kind, _, res_name = resource.partition(".")
    if kind not in ("limits", "requests") or res_name not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported container resource : {resource}")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(res_name)
    if value is None and kind == "limits":
        allocatable = node_allocatable if node_allocatable is not None else host_allocatable()
        value = allocatable.get(res_name)
    divisor = resource_field_ref.get("divisor") or "1"
    try:
        amount = quantity.parse(value if value is not None else "0")
        div = quantity.parse(divisor)
    except ValueError as e:
        raise EnvError(f"invalid quantity in resourceFieldRef {resource}: {e}") from e
    if res_name == "cpu":
        # convertResourceCPUToString: MilliValue / divisor.MilliValue, rounded up
        num, den = math.ceil(amount * 1000), math.ceil(div * 1000)
    else:
        num, den = math.ceil(amount), math.ceil(div)
    if den == 0:
        raise EnvError(f"invalid divisor {divisor} in resourceFieldRef {resource}")
    return str(math.ceil(num / den))


# ---------------------------------------------------------------- the environment


def _secret_text(encoded: str) -> str:
    return base64.b64decode(encoded).decode("utf-8", errors="replace")


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    node_ip: str,
    get_configmap: GetObject,
    get_secret: GetObject,
    service_env: dict[str, str] | None = None,
    pod_ips: list[str] | None = None,
    node_allocatable: dict[str, Any] | None = None,
    on_invalid_keys: Callable[[str], None] | None = None,
) -> list[tuple[str, str]]:
    """The (name, value) pairs the container runs with; EnvError says what is missing.

    `get_configmap(namespace, name)` / `get_secret(namespace, name)` return the
    object or None when it does not exist. `pod_ips` are the sandbox's addresses
    (the pod's status may not carry them yet); `node_allocatable` fills in
    missing limits for resourceFieldRef. `on_invalid_keys` receives the
    InvalidEnvironmentVariableNames warning for envFrom keys that were skipped.
    """
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    service_env = service_env or {}
    configmaps: dict[str, dict[str, Any] | None] = {}
    secrets: dict[str, dict[str, Any] | None] = {}

    def configmap(name: str) -> dict[str, Any] | None:
        if name not in configmaps:
            configmaps[name] = get_configmap(namespace, name)
        return configmaps[name]

    def secret(name: str) -> dict[str, Any] | None:
        if name not in secrets:
            secrets[name] = get_secret(namespace, name)
        return secrets[name]

    env: dict[str, str] = {}  # insertion-ordered, like the declaration order a user reads
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if source.get("configMapRef") is not None:
            ref, kind = source["configMapRef"], "configMap"
            obj = configmap(ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'configmap "{ref.get("name", "")}" not found')
            values = dict(obj.get("data") or {})
        elif source.get("secretRef") is not None:
            ref, kind = source["secretRef"], "secret"
            obj = secret(ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'secret "{ref.get("name", "")}" not found')
            values = {k: _secret_text(v) for k, v in (obj.get("data") or {}).items()}
        else:
            continue
        invalid = []
        for key, value in values.items():
            key = prefix + key
            if not is_env_var_name(key):
                invalid.append(key)
                continue
            env[key] = value
        if invalid and on_invalid_keys is not None:
            on_invalid_keys(
                f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {kind} "
                f"{namespace}/{ref.get('name', '')} were skipped since they are "
                "considered invalid environment variable names."
            )

    mapping = mapping_for(env, service_env)  # sees env as it grows: earlier variables only
    for var in container.get("env") or []:
        name = var["name"]
        value = var.get("value") or ""
        source = var.get("valueFrom")
        if value:
            value = expand(value, mapping)
        elif source:
            if source.get("fieldRef"):
                ref = source["fieldRef"]
                value = pod_field_value(
                    pod,
                    ref.get("fieldPath", ""),
                    api_version=ref.get("apiVersion") or "v1",
                    node_ip=node_ip,
                    pod_ips=pod_ips,
                )
            elif source.get("resourceFieldRef"):
                value = container_resource_value(
                    source["resourceFieldRef"], pod, container, node_allocatable=node_allocatable
                )
            elif source.get("configMapKeyRef"):
                ref = source["configMapKeyRef"]
                cm_name, key = ref.get("name", ""), ref.get("key", "")
                obj = configmap(cm_name)
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise EnvError(f'configmap "{cm_name}" not found')
                data = obj.get("data") or {}
                if key not in data:
                    if ref.get("optional"):
                        continue
                    raise EnvError(f"couldn't find key {key} in ConfigMap {namespace}/{cm_name}")
                value = data[key]
            elif source.get("secretKeyRef"):
                ref = source["secretKeyRef"]
                s_name, key = ref.get("name", ""), ref.get("key", "")
                obj = secret(s_name)
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise EnvError(f'secret "{s_name}" not found')
                data = obj.get("data") or {}
                if key not in data:
                    if ref.get("optional"):
                        continue
                    raise EnvError(f"couldn't find key {key} in Secret {namespace}/{s_name}")
                value = _secret_text(data[key])
        env[name] = value

    return [(k, v) for k, v in service_env.items() if k not in env] + list(env.items())
