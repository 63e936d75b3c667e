"""Conversion between events.k8s.io/v1 Events and the core/v1 Events they are stored as.

Kubernetes keeps one copy of each event (core/v1 in etcd) and serves it in both
shapes; the field mapping here is the one its conversion functions use.
"""

from __future__ import annotations

from typing import Any

# events.k8s.io/v1 field -> core/v1 field
RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
SHARED = (
    "metadata",
    "eventTime",
    "series",
    "related",
    "action",
    "reason",
    "type",
    "reportingInstance",
)
FIELD_SELECTORS = {"regarding.": "involvedObject.", "reportingController": "reportingComponent"}


def to_core(event: dict[str, Any]) -> dict[str, Any]:
    core: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for key in SHARED:
        if key in event:
            core[key] = event[key]
    for new, old in RENAMED.items():
        if new in event:
            core[old] = event[new]
    return core


def from_core(core: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for key in SHARED:
        if key in core:
            event[key] = core[key]
    for new, old in RENAMED.items():
        if old in core:
            event[new] = core[old]
    if not event.get("reportingController") and (core.get("source") or {}).get("component"):
        event["reportingController"] = core["source"]["component"]
    if not event.get("reportingInstance") and (core.get("source") or {}).get("host"):
        event["reportingInstance"] = core["source"]["host"]
    return event


def field_selector_to_core(text: str) -> str:
    for new, old in FIELD_SELECTORS.items():
        text = text.replace(new, old)
    return text
