"""ReplicationController controller: the ReplicaSet's predecessor (core/v1), still
found in old manifests and tutorials.

It behaves exactly as a ReplicaSet except that its selector is a plain map of
labels that must all be equal, so Kubernetes runs the ReplicaSet code on a
converted view — and so does skiff: `view()` turns the map into a
`matchLabels` selector, and everything else, `decide()` included, is the
ReplicaSet controller's.
"""

from __future__ import annotations

import copy
from typing import Any

from .replicaset import ReplicaSetController


class ReplicationControllerController(ReplicaSetController):
    name = "replication-controller"
    api_version, kind = "v1", "ReplicationController"

    def view(self, rc: dict[str, Any]) -> dict[str, Any]:
        """The ReplicationController with its selector in LabelSelector form."""
        out = copy.copy(rc)
        spec = dict(rc.get("spec") or {})
        selector = spec.get("selector") or {}
        spec["selector"] = {"matchLabels": dict(selector)} if selector else None
        out["spec"] = spec
        return out
