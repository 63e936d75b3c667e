"""Static pods: pods read from files in `--pod-manifest-path`, run without the API.

As in Kubernetes, a static pod is named `<name>-<node>`, gets a uid that is a
hash of its manifest and node (so an edited file is a new pod), and is shown
in the API as a *mirror pod*: a copy carrying the annotation
`kubernetes.io/config.mirror`, owned by the Node. Deleting the mirror pod does
not stop the static pod (the kubelet makes a new mirror); removing the file does.
The directory is read again every 20 seconds, the kubelet's file-check period,
and as soon as a file appears in it or leaves it.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from api import defaults
from client import errors
from client.rest import Client

log = logging.getLogger("skiff.kubelet.static")
CHECK_PERIOD = 20.0
MIRROR = "kubernetes.io/config.mirror"
SOURCE = "kubernetes.io/config.source"
HASH = "kubernetes.io/config.hash"


def read_manifests(directory: Path, node_name: str) -> dict[str, dict[str, Any]]:
    """uid -> static pod, from every .yaml, .yml and .json file of the directory."""
    pods: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return pods
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json") or path.name.startswith("."):
            continue
        try:
            text = path.read_text()
            docs = [d for d in yaml.safe_load_all(text) if d]
        except (OSError, yaml.YAMLError) as e:
            log.warning("static pod manifest %s unreadable: %s", path, e)
            continue
        for doc in docs:
            if doc.get("kind") != "Pod":
                log.warning("%s: only Pods can be static pods, not %s", path, doc.get("kind"))
                continue
            pod = static_pod(doc, node_name, text)
            pods[pod["metadata"]["uid"]] = pod
    return pods


def static_pod(manifest: dict[str, Any], node_name: str, source: str) -> dict[str, Any]:
    pod = copy.deepcopy(manifest)
    pod.setdefault("apiVersion", "v1")
    meta = pod.setdefault("metadata", {})
    meta["name"] = f"{meta.get('name', 'static')}-{node_name}"
    meta.setdefault("namespace", "default")
    digest = hashlib.md5(f"{node_name}\n{source}".encode(), usedforsecurity=False).hexdigest()
    meta["uid"] = digest
    meta["annotations"] = {**(meta.get("annotations") or {}), HASH: digest, SOURCE: "file"}
    pod["spec"]["nodeName"] = node_name
    defaults.pod(pod)
    pod["status"] = {}
    return pod


def mirror_of(pod: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    mirror = copy.deepcopy(pod)
    meta = mirror["metadata"]
    del meta["uid"]
    meta["annotations"][MIRROR] = meta["annotations"][HASH]
    meta["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": node["metadata"]["name"],
            "uid": node["metadata"]["uid"],
            "controller": True,
        }
    ]
    mirror.pop("status", None)
    return mirror


class StaticPods:
    def __init__(self, client: Client, directory: Path | None, node_name: str) -> None:
        self.client, self.directory, self.node_name = client, directory, node_name
        self.pods: dict[str, dict[str, Any]] = {}

    def __call__(self) -> dict[str, dict[str, Any]]:
        return self.pods

    def refresh(self) -> set[str]:
        """Read the directory again; the uids that appeared or went."""
        if self.directory is None:
            return set()
        fresh = read_manifests(self.directory, self.node_name)
        changed = set(fresh) ^ set(self.pods)
        self.pods = fresh
        return changed

    async def sync_mirrors(self, node: dict[str, Any], api_pods: list[dict[str, Any]]) -> None:
        """A mirror pod for every static pod; none for static pods that are gone."""
        mirrors = {
            (p["metadata"]["namespace"], p["metadata"]["name"]): p
            for p in api_pods
            if MIRROR in (p["metadata"].get("annotations") or {})
        }
        wanted = {
            (p["metadata"]["namespace"], p["metadata"]["name"]): p for p in self.pods.values()
        }
        for key, pod in wanted.items():
            existing = mirrors.get(key)
            current = (
                existing and existing["metadata"]["annotations"][MIRROR] == pod["metadata"]["uid"]
            )
            if current:
                continue
            try:
                if existing is not None:
                    await self.client.delete("v1", "Pod", key[0], key[1], grace_period=0)
                await self.client.create(mirror_of(pod, node))
            except (errors.Conflict, errors.NotFound) as e:
                log.info("mirror pod %s/%s: %s", key[0], key[1], e)
        for key in set(mirrors) - set(wanted):
            try:
                await self.client.delete("v1", "Pod", key[0], key[1], grace_period=0)
            except errors.NotFound:
                pass

    def _directory_stamp(self) -> float:
        try:
            return self.directory.stat().st_mtime if self.directory else 0.0
        except OSError:
            return 0.0

    async def run(self, node: dict[str, Any], api_pods: Any, wake: Any) -> None:
        """Read the directory every 20 s, and at once when a file appears or goes there
        (its mtime changes; the kubelet watches it with inotify to the same effect)."""
        stamp, read_at = None, 0.0
        while True:
            now = time.monotonic()
            if self._directory_stamp() != stamp or now - read_at >= CHECK_PERIOD:
                stamp, read_at = self._directory_stamp(), now
                for uid in self.refresh():
                    wake(uid)
                try:
                    await self.sync_mirrors(node, api_pods())
                except (errors.ApiError, httpx.HTTPError) as e:
                    log.warning("mirror pods: %s", e)
            await asyncio.sleep(1.0)
