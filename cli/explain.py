"""`skiff explain`: why an object is as it is, from the objects, their Events and the trace.

    skiff explain deployment/web [-n ns]   the causal chain: apply -> ReplicaSet ->
                                           pods -> bindings (and why that node) ->
                                           container starts -> endpoints
    skiff explain pod/x [-n ns]            why it is Pending or crash-looping, in one
                                           paragraph, and why it landed where it did:
                                           each node's filter verdicts and each score
                                           plugin's raw, normalized and weighted score

Everything comes through the API: the objects, the Events Kubernetes records,
and the reconcile trace (client/trace.py), whose records name the decide
function that chose each step.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from api.meta import controller_of
from api.selectors import selector_from_dict
from client import errors
from client.config import ConfigError, load_config
from client.rest import Client
from client.trace import TraceReader

from .trace import parse_object


def _clock(stamp: str | None) -> str:
    return (stamp or "")[11:19] or "--:--:--"


class Facts:
    """What the API holds about one namespace, fetched once."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self.records: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def load(self) -> None:
        self.records, _ = await TraceReader(self.client).snapshot()
        self.events, _ = await self.client.list("v1", "Event", self.namespace)
        self.events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def events_of(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        uid = obj["metadata"].get("uid")
        name = obj["metadata"]["name"]
        return [
            e
            for e in self.events
            if (e.get("involvedObject") or {}).get("uid") == uid
            or (
                (e.get("involvedObject") or {}).get("name") == name
                and (e.get("involvedObject") or {}).get("kind") == obj.get("kind")
            )
        ]

    def records_of(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records
            if r.get("kind") == kind
            and r.get("name") == name
            and r.get("namespace") in (self.namespace, "")
        ]


def _event_lines(events: list[dict[str, Any]], indent: str) -> list[str]:
    out = []
    for e in events:
        times = f" (x{e['count']})" if int(e.get("count") or 1) > 1 else ""
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        out.append(
            f"{indent}{_clock(e.get('lastTimestamp'))} {e.get('reason')}{times}: "
            f"{e.get('message')}  [{source}]"
        )
    return out


def why_node(record: dict[str, Any] | None) -> str:
    """One line: why the scheduler chose this node, from its trace record."""
    details = (record or {}).get("details") or {}
    node = details.get("node")
    if not node:
        return ""
    scores = details.get("scores") or {}
    looked = details.get("nodesLookedAt", 0)
    passed = details.get("nodesPassed")  # the filters shown may be only some of them
    if passed is None:
        passed = sum(1 for v in (details.get("filters") or {}).values() if v and not v[-1][1])
    if not scores:
        return f"{node}: the only node of {looked} that passed every filter"
    total = {n: sum(p["weighted"] for p in plugins.values()) for n, plugins in scores.items()}
    mine = scores.get(node) or {}
    best = max(mine.items(), key=lambda kv: kv[1]["weighted"], default=None)
    lead = f", most from {best[0]} ({best[1]['weighted']:g})" if best else ""
    return (
        f"{node}: {passed} of {looked} nodes passed the filters; it scored highest "
        f"({total.get(node, 0):g}{lead})"
    )


def scheduling_table(record: dict[str, Any]) -> list[str]:
    details = record.get("details") or {}
    lines = []
    if details.get("sampling"):  # which nodes were looked at, and how many are shown
        shown = len(details.get("filters") or {})
        lines.append(f"  ({details['sampling']}; {shown} shown)")
    for node, verdicts in (details.get("filters") or {}).items():
        failed = next(((p, r) for p, r in verdicts if r), None)
        if failed:
            lines.append(f"  {node}: filtered out by {failed[0]}: {failed[1]}")
            continue
        plugins = (details.get("scores") or {}).get(node) or {}
        total = sum(p["weighted"] for p in plugins.values())
        mark = "  <- chosen" if node == details.get("node") else ""
        lines.append(f"  {node}: passed {len(verdicts)} filters; total score {total:g}{mark}")
        for name, s in plugins.items():
            lines.append(
                f"      {name:<24} raw {s['raw']:<8g} normalized {s['normalized']:<6g} "
                f"weighted {s['weighted']:g}"
            )
    return lines


async def explain_deployment(facts: Facts, name: str) -> list[str]:
    client, ns = facts.client, facts.namespace
    d = await client.get("apps/v1", "Deployment", ns, name)
    d.setdefault("kind", "Deployment")
    meta = d["metadata"]
    managers = meta.get("managedFields") or []
    applied = max(managers, key=lambda m: m.get("time") or "", default={})
    out = [
        f"Deployment {ns}/{name}: {d['spec'].get('replicas', 1)} replicas wanted, "
        f"{(d.get('status') or {}).get('availableReplicas', 0)} available "
        f"(generation {meta.get('generation')})",
        f"{_clock(meta.get('creationTimestamp'))} created"
        + (
            f"; last written by {applied.get('manager')} ({applied.get('operation')}) "
            f"at {_clock(applied.get('time'))}"
            if applied
            else ""
        ),
    ]
    out += _event_lines(facts.events_of(d), "  ")
    for r in facts.records_of("Deployment", name)[-5:]:
        acts = ", ".join(a["action"] for a in r.get("actions") or [])
        out.append(f"  {_clock(r['time'])} {r['decide']} -> {acts}")
    replicasets, _ = await client.list("apps/v1", "ReplicaSet", ns)
    pods, _ = await client.list("v1", "Pod", ns)
    services, _ = await client.list("v1", "Service", ns)
    scheduler = {
        r["name"]: r for r in facts.records if r.get("controller") == "scheduler"
    }  # newest wins
    mine = [rs for rs in replicasets if (controller_of(rs) or {}).get("uid") == meta["uid"]]
    mine.sort(key=lambda rs: rs["metadata"].get("creationTimestamp") or "")
    all_pods: list[dict[str, Any]] = []
    for rs in mine:
        rmeta = rs["metadata"]
        revision = (rmeta.get("annotations") or {}).get("deployment.kubernetes.io/revision", "?")
        out.append(
            f"-> ReplicaSet {rmeta['name']} (revision {revision}), "
            f"{rs['spec'].get('replicas', 0)} replicas, "
            f"created {_clock(rmeta.get('creationTimestamp'))}"
        )
        out += _event_lines(facts.events_of(rs), "     ")
        owned = [p for p in pods if (controller_of(p) or {}).get("uid") == rmeta["uid"]]
        all_pods += owned
        for pod in owned:
            pod.setdefault("kind", "Pod")
            pmeta, status = pod["metadata"], pod.get("status") or {}
            node = (pod.get("spec") or {}).get("nodeName") or "not scheduled"
            out.append(
                f"   -> Pod {pmeta['name']}: {status.get('phase', 'Pending')} on {node}"
                + (f", IP {status['podIP']}" if status.get("podIP") else "")
            )
            reason = why_node(scheduler.get(pmeta["name"]))
            if reason:
                out.append(f"        why that node: {reason}")
            out += _event_lines(facts.events_of(pod), "        ")
    for svc in services:
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            continue
        sel = selector_from_dict({"matchLabels": selector})
        matched = [p for p in all_pods if sel.matches(p["metadata"].get("labels") or {})]
        if not matched:
            continue
        svc.setdefault("kind", "Service")
        try:
            ep = await client.get("v1", "Endpoints", ns, svc["metadata"]["name"])
            ready = [a.get("ip") for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
        except errors.NotFound:
            ready = []
        out.append(
            f"-> Service {svc['metadata']['name']} ({(svc.get('spec') or {}).get('clusterIP')}): "
            f"endpoints {', '.join(ready) or 'none ready'}"
        )
        out += _event_lines(facts.events_of(svc), "     ")
        for r in facts.records_of("Service", svc["metadata"]["name"])[-3:]:
            acts = ", ".join(a["action"] for a in r.get("actions") or [])
            out.append(f"     {_clock(r['time'])} {r['component']}/{r['controller']}: {acts}")
        # The rules each node's proxy wrote for it (its records name the changed Services).
        key = f"{ns}/{svc['metadata']['name']}"
        rules = [
            r
            for r in facts.records
            if r.get("controller") == "proxy" and key in (r.get("observed") or "")
        ]
        for r in rules[-3:]:
            calls = "; ".join(c for a in r.get("actions") or [] for c in a.get("calls") or [])
            out.append(f"     {_clock(r['time'])} {r['component']}: rules synced ({calls})")
    return out


def pod_paragraph(pod: dict[str, Any], record: dict[str, Any] | None) -> str:
    """Why the pod is as it is, in words a learner reads."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    name = f"{meta['namespace']}/{meta['name']}"
    phase = status.get("phase", "Pending")
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            return (
                f"Pod {name} is crash-looping: its container {cs['name']} has exited "
                f"{cs.get('restartCount', 0)} times, the last time with exit code "
                f"{last.get('exitCode', '?')} ({last.get('reason', 'no reason given')}). "
                "The kubelet restarts it with a back-off that doubles up to five minutes "
                "(CrashLoopBackOff); `kubectl logs --previous` shows what the last run printed."
            )
        if waiting.get("reason"):
            return (
                f"Pod {name} is {phase}: container {cs['name']} is waiting, "
                f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
                + "."
            )
    if not spec.get("nodeName"):
        if scheduled and scheduled.get("status") == "False":
            return (
                f"Pod {name} is Pending because the scheduler found no node for it: "
                f"{scheduled.get('message')} Each node must pass every filter "
                "(below, the first one a node failed); the pod is tried again when "
                "nodes or pods change."
            )
        return (
            f"Pod {name} is Pending and not yet scheduled: the scheduler has not "
            "decided about it yet (is `skiff scheduler` running, or is the loop paused?)."
        )
    landed = why_node(record)
    where = f" Why {spec['nodeName']}: {landed}." if landed else ""
    if phase == "Pending":
        return (
            f"Pod {name} is scheduled to {spec['nodeName']} and Pending there: the kubelet "
            f"of that node has not started all its containers yet.{where}"
        )
    return f"Pod {name} is {phase} on {spec['nodeName']}.{where}"


async def explain_pod(facts: Facts, name: str) -> list[str]:
    pod = await facts.client.get("v1", "Pod", facts.namespace, name)
    pod.setdefault("kind", "Pod")
    records = [r for r in facts.records_of("Pod", name) if r.get("controller") == "scheduler"]
    record = records[-1] if records else None
    out = [pod_paragraph(pod, record)]
    if record is not None:
        out += ["", f"The scheduler's last decision ({_clock(record['time'])}, "
                    f"{record['decide']}):"]  # fmt: skip
        out += scheduling_table(record)
    events = facts.events_of(pod)
    if events:
        out += ["", "Events:", *_event_lines(events, "  ")]
    return out


async def run(args: argparse.Namespace) -> int:
    kind, name = parse_object(args.object)
    client = Client(load_config(args.kubeconfig), user_agent="skiff-explain")
    try:
        namespace = args.namespace or client.config.namespace
        facts = Facts(client, namespace)
        await facts.load()
        if kind == "Deployment":
            lines = await explain_deployment(facts, name)
        elif kind == "Pod":
            lines = await explain_pod(facts, name)
        else:
            raise ValueError(f"explain knows deployment/NAME and pod/NAME, not {args.object}")
    except errors.NotFound as e:
        print(f"skiff explain: {e.message}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    print("\n".join(lines))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiff explain", description=__doc__.split("\n\n")[0])
    p.add_argument("object", help="deployment/NAME or pod/NAME")
    p.add_argument("-n", "--namespace", default="")
    p.add_argument("--kubeconfig", default=None)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (ConfigError, ValueError) as e:
        print(f"skiff explain: {e}", file=sys.stderr)
        return 1
