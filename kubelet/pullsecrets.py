"""Registry credentials from a pod's imagePullSecrets, matched as the kubelet's keyring does.

A pod names Secrets of type `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`:
`{"auths": {"registry": {...}}}`) or `kubernetes.io/dockercfg` (`.dockercfg`:
the same map without `auths`). Each entry is keyed by a registry, optionally
with a path and a scheme (`https://index.docker.io/v1/`, `quay.io/coreos`,
`*.example.com`), and carries `username`/`password` or `auth`
(base64 of `user:password`, which wins), or a token.

Matching is credentialprovider.BasicDockerKeyring's: the scheme and a
leading `/v1/` or `/v2/` are dropped; a key matches an image's repository
(`docker.io/library/nginx` for `nginx`) when the ports are equal, the hosts
have as many dot-separated parts and each part matches as a glob, and the
key's path is a prefix of the repository's path. More specific keys come
first (the index is reverse-sorted), and every match is returned: the kubelet
tries each credential in turn and stops at the first successful pull. An image
from Docker Hub that no key matches falls back to the credentials for
`index.docker.io` (what `docker login` writes); `registry-1.docker.io`, the
host Docker Hub is really pulled from, is accepted as the same alias.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proto import runtime_pb2

GetObject = Callable[[str, str], "dict[str, Any] | None"]

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"
DEFAULT_REGISTRY_HOST = "index.docker.io"
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")


class PullSecretError(Exception):
    """A pull secret whose contents cannot be read (the pull fails with this message)."""


@dataclass(frozen=True)
class RegistryCredentials:
    """One credential for one registry key, as the runtime's AuthConfig wants it."""

    key: str
    username: str = ""
    password: str = ""
    auth: str = ""
    identity_token: str = ""
    registry_token: str = ""
    source: str = ""  # the Secret it came from, namespace/name

    def to_auth_config(self) -> runtime_pb2.AuthConfig:
        """The runtime's AuthConfig (it has no identity token field: such entries give none)."""
        return runtime_pb2.AuthConfig(
            username=self.username,
            password=self.password,
            auth=self.auth,
            server_address=self.key,
            registry_token=self.registry_token,
        )


# ---------------------------------------------------------------- reading secrets


def _entry(key: str, raw: Any, source: str) -> RegistryCredentials:
    """DockerConfigEntry.UnmarshalJSON: `auth`, when present, gives user and password."""
    if not isinstance(raw, dict):
        raise PullSecretError(f"secret {source}: entry {key!r} is not an object")
    username, password = str(raw.get("username") or ""), str(raw.get("password") or "")
    auth = str(raw.get("auth") or "")
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise PullSecretError(f"secret {source}: entry {key!r}: {e}") from e
        if ":" not in decoded:
            raise PullSecretError(
                f"secret {source}: entry {key!r}: unable to parse auth field, "
                "must be formatted as base64(username:password)"
            )
        username, password = decoded.split(":", 1)
    return RegistryCredentials(
        key=key,
        username=username,
        password=password,
        auth=auth,
        identity_token=str(raw.get("identitytoken") or ""),
        registry_token=str(raw.get("registrytoken") or ""),
        source=source,
    )


def secret_entries(secret: dict[str, Any]) -> list[RegistryCredentials]:
    """The registry entries of one pull Secret; [] for a Secret of another type."""
    meta = secret.get("metadata") or {}
    source = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    data = secret.get("data") or {}
    kind = secret.get("type")
    if kind == DOCKER_CONFIG_JSON and data.get(".dockerconfigjson"):
        field = ".dockerconfigjson"
    elif kind == DOCKER_CFG and data.get(".dockercfg"):
        field = ".dockercfg"
    else:
        return []
    try:
        parsed = json.loads(base64.b64decode(data[field]))
    except (binascii.Error, ValueError) as e:
        raise PullSecretError(f"secret {source}: {field} is not valid JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise PullSecretError(f"secret {source}: {field} is not a JSON object")
    registries = (parsed.get("auths") or {}) if field == ".dockerconfigjson" else parsed
    if not isinstance(registries, dict):
        raise PullSecretError(f"secret {source}: {field}: auths is not an object")
    return [_entry(key, raw, source) for key, raw in registries.items()]


def pod_pull_secrets(
    pod: dict[str, Any], get_secret: GetObject
) -> tuple[list[dict[str, Any]], list[str]]:
    """The pod's imagePullSecrets that exist, and the names of those that do not."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    found, missing = [], []
    for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
        name = ref.get("name") or ""
        if not name:
            continue
        secret = get_secret(namespace, name)
        if secret is None:
            missing.append(name)
        else:
            found.append(secret)
    return found, missing


def failed_pull_secrets_message(missing: list[str]) -> str:
    """The FailedToRetrieveImagePullSecret event's message."""
    return (
        f"Unable to retrieve some image pull secrets ({', '.join(missing)}); "
        "attempting to pull the image may not succeed."
    )


# ---------------------------------------------------------------- matching


def _schemeless(url: str) -> tuple[str, str]:
    """(host[:port], path) of a key or repository, with no scheme."""
    for scheme in ("https://", "http://"):
        if url.startswith(scheme):
            url = url[len(scheme) :]
            break
    host, slash, path = url.partition("/")
    return host, slash + path


def keyring_key(registry: str) -> str:
    """BasicDockerKeyring.Add: the key an entry is filed under (`index.docker.io/v1/` -> host)."""
    host, path = _schemeless(registry)
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return host + path if path and path != "/" else host


def _split_host(host: str) -> tuple[list[str], str]:
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit():
        name, port = host, ""
    return name.split("."), port


def urls_match(glob: str, target: str) -> bool:
    """credentialprovider.URLsMatchStr: same port, same host part count, parts glob-match,
    and the key's path is a prefix of the target's."""
    glob_host, glob_path = _schemeless(glob)
    target_host, target_path = _schemeless(target)
    glob_parts, glob_port = _split_host(glob_host)
    target_parts, target_port = _split_host(target_host)
    if glob_port != target_port or len(glob_parts) != len(target_parts):
        return False
    if not target_path.startswith(glob_path):
        return False
    return all(fnmatch.fnmatchcase(t, g) for g, t in zip(glob_parts, target_parts, strict=True))


def image_repository(image: str) -> str:
    """The repository the keyring is asked about: `nginx:1.27` -> `docker.io/library/nginx`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if not rest or not (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    ):
        first, rest = "docker.io", name
    if first == "index.docker.io":
        first = "docker.io"
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    return f"{first}/{rest}"


def _is_default_registry(repository: str) -> bool:
    """isDefaultRegistryMatch: does this repository come from Docker Hub?"""
    first, _, rest = repository.partition("/")
    if not first:
        return False
    if not rest or first in ("docker.io", "index.docker.io"):
        return True
    return not any(c in first for c in ".:") and first != "localhost"


def credentials_for(image: str, secrets: list[dict[str, Any]]) -> list[RegistryCredentials]:
    """Every credential that applies to `image`, most specific key first (try them in turn).

    [] means pull anonymously. PullSecretError when a secret cannot be read.
    """
    by_key: dict[str, list[RegistryCredentials]] = {}
    for secret in secrets:
        for entry in secret_entries(secret):
            by_key.setdefault(keyring_key(entry.key), []).append(entry)
    repository = image_repository(image)
    found = [
        cred
        for key in sorted(by_key, reverse=True)
        if urls_match(key, repository)
        for cred in by_key[key]
    ]
    if found:
        return found
    if _is_default_registry(repository):
        for alias in DOCKER_HUB_ALIASES:
            if alias in by_key:
                return by_key[alias]
    return []


def pull_auths(
    pod: dict[str, Any],
    image: str,
    *,
    get_secret: GetObject,
    on_missing: Callable[[str], None] | None = None,
) -> list[runtime_pb2.AuthConfig]:
    """The AuthConfigs to try, in order, for pulling `image` for `pod`; [] = anonymous.

    `on_missing` receives the FailedToRetrieveImagePullSecret warning when some of
    the pod's imagePullSecrets do not exist (the pull is still attempted, as in
    Kubernetes). PullSecretError when a secret's contents cannot be read.
    """
    secrets, missing = pod_pull_secrets(pod, get_secret)
    if missing and on_missing is not None:
        on_missing(failed_pull_secrets_message(missing))
    return [cred.to_auth_config() for cred in credentials_for(image, secrets)]


def pull_auth(
    pod: dict[str, Any],
    image: str,
    *,
    get_secret: GetObject,
    on_missing: Callable[[str], None] | None = None,
) -> runtime_pb2.AuthConfig | None:
    """The first (most specific) AuthConfig for `image`, or None to pull anonymously.

    The real kubelet tries every matching credential until one pull succeeds;
    `pull_auths` gives them all for a caller that does the same.
    """
    auths = pull_auths(pod, image, get_secret=get_secret, on_missing=on_missing)
    return auths[0] if auths else None
