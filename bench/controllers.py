"""Control loops at scale: a 1,000-replica Deployment, beside the raw create rate.

    .venv/bin/python bench/controllers.py [--replicas 1000] [--trace both|on|off]

Starts a fresh apiserver and controller-manager (no kubelets), then measures
in the same run:
- the floor: this script creating N pods directly through the API (32 clients);
- apply to N pods: a Deployment of N replicas until N pods exist;
- a rolling update of it to completion, with a helper marking every new pod
  Running and Ready through the status subresource, as a hollow node would.

With `--trace both` (the default) it does all of that twice, each time on a
fresh control plane: once with the controller-manager's reconcile trace off
(`SKIFF_TRACE=0`), once with it on (the default of a real cluster), and
prints both columns and how much slower tracing made each step. About two
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cluster import Cluster

from client.trace import FLUSH_SECONDS

ROOT = Path(__file__).resolve().parent.parent


def pod_body(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"raw-{i}", "labels": {"app": "raw"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
    }


def deployment(replicas: int, image: str) -> dict[str, Any]:
    labels = {"app": "big"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


async def count_pods(api: httpx.AsyncClient, ns: str, selector: str) -> list[dict[str, Any]]:
    items = (
        await api.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": selector})
    ).json()["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def hollow_node(api: httpx.AsyncClient, ns: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        pods = await count_pods(api, ns, "app=big")
        pending = [p for p in pods if (p.get("status") or {}).get("phase") != "Running"]

        async def mark(p: dict[str, Any]) -> None:
            p["status"] = {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
            await api.put(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}/status", json=p)

        for i in range(0, len(pending), 32):
            await asyncio.gather(*(mark(p) for p in pending[i : i + 32]))
        await asyncio.sleep(0.2)


async def poll(check: Any, interval: float) -> None:
    """Until `await check()` is true: the benchmark measures when it became so."""
    while True:
        if await check():
            return
        await asyncio.sleep(interval)


async def _enough(api: httpx.AsyncClient, n: int) -> bool:
    return len(await count_pods(api, "ctl", "app=big")) >= n


async def _available(api: httpx.AsyncClient, n: int) -> bool:
    d = (await api.get("/apis/apps/v1/namespaces/ctl/deployments/big")).json()
    return d.get("status", {}).get("availableReplicas") == n


async def _rolled_out(api: httpx.AsyncClient, n: int) -> bool:
    """Done when the controller has seen the new template and every pod is new and ready."""
    d = (await api.get("/apis/apps/v1/namespaces/ctl/deployments/big")).json()
    s = d.get("status", {})
    return (
        s.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and s.get("updatedReplicas") == n
        and s.get("availableReplicas") == n
        and s.get("replicas") == n
    )


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far, with its children's that are alive
    (the apiserver's workers; its etcd too, which tracing's writes also cost): what
    tracing costs, however loaded the machine is (wall-clock rates swing with the
    other work on a shared machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return own + sum(cpu_seconds(c) for c in children)


async def scenario(n: int, *, trace: bool) -> dict[str, float]:
    """One fresh control plane, the three measurements; pods/s each (and trace records)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        cluster.start_apiserver()
        # The switch is the controller-manager's environment (client/trace.py).
        saved = os.environ.get("SKIFF_TRACE")
        os.environ["SKIFF_TRACE"] = "1" if trace else "0"
        try:
            cluster.start_component("controllers")
        finally:
            if saved is None:
                os.environ.pop("SKIFF_TRACE", None)
            else:
                os.environ["SKIFF_TRACE"] = saved
        try:
            async with cluster.client() as api:
                await api.post("/api/v1/namespaces", json={"metadata": {"name": "raw"}})
                await api.post("/api/v1/namespaces", json={"metadata": {"name": "ctl"}})
                t0 = time.perf_counter()
                for i in range(0, n, 32):
                    await asyncio.gather(
                        *(
                            api.post("/api/v1/namespaces/raw/pods", json=pod_body(j))
                            for j in range(i, min(i + 32, n))
                        )
                    )
                out["raw"] = n / (time.perf_counter() - t0)

                apiserver, controllers = (p.pid for p in cluster.procs[:2])
                cpu0 = cpu_seconds(controllers), cpu_seconds(apiserver)
                t0 = time.perf_counter()
                await api.post(
                    "/apis/apps/v1/namespaces/ctl/deployments", json=deployment(n, "nginx:1")
                )
                await poll(lambda: _enough(api, n), 0.25)
                out["apply"] = n / (time.perf_counter() - t0)

                stop = asyncio.Event()
                helper = asyncio.create_task(hollow_node(api, "ctl", stop))
                await poll(lambda: _available(api, n), 0.5)
                t0 = time.perf_counter()
                await api.patch(
                    "/apis/apps/v1/namespaces/ctl/deployments/big",
                    headers={"Content-Type": "application/merge-patch+json"},
                    content=json.dumps(
                        {
                            "spec": {
                                "template": {
                                    "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}
                                }
                            }
                        }
                    ),
                )
                await poll(lambda: _rolled_out(api, n), 0.5)
                out["rollout"] = n / (time.perf_counter() - t0)
                stop.set()
                await helper
                # The trace's last ConfigMap write (coalesced: at most one per
                # FLUSH_SECONDS), so its cost is counted in the CPU columns.
                await asyncio.sleep(FLUSH_SECONDS + 1.0)
                out["cm_cpu"] = cpu_seconds(controllers) - cpu0[0]
                out["api_cpu"] = cpu_seconds(apiserver) - cpu0[1]
                out["records"] = await _trace_records(api)
        finally:
            cluster.stop()
    return out


async def _trace_records(api: httpx.AsyncClient) -> float:
    """How many acting reconciles the controller-manager traced (its ring's `seq`)."""
    r = await api.get("/api/v1/namespaces/kube-system/configmaps/skiff-trace-controller-manager")
    if r.status_code != 200:
        return 0.0
    return float((r.json().get("data") or {}).get("seq") or 0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--trace", choices=("both", "on", "off"), default="both")
    args = parser.parse_args()
    n = args.replicas
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.trace]
    runs = {mode: await scenario(n, trace=mode) for mode in modes}
    print(f"machine: {os.cpu_count()} cpus; {n} pods; load average {os.getloadavg()[0]:.2f}\n")
    names = {False: "tracing off", True: "tracing on"}
    header = " | ".join(names[m] for m in modes)
    print(f"| measurement | {header} |" + (" tracing on vs off |" if len(modes) == 2 else ""))
    print("|---|" + "---|" * len(modes) + ("---|" if len(modes) == 2 else ""))
    rows = [
        ("floor: raw pod creates, 32 clients (pods/s)", "raw", True),
        (f"Deployment applied -> {n} pods exist (pods/s)", "apply", True),
        (f"rolling update of the {n} pods to completion (pods/s)", "rollout", True),
        ("controller-manager CPU for apply + rollout (s)", "cm_cpu", False),
        ("apiserver (workers) + etcd CPU for apply + rollout (s)", "api_cpu", False),
    ]
    for label, key, rate in rows:
        cells = " | ".join(f"{runs[m][key]:.0f}" if rate else f"{runs[m][key]:.1f}" for m in modes)
        extra = ""
        if len(modes) == 2:
            off, on = runs[False][key], runs[True][key]
            change = (off / on - 1) if rate else (on / off - 1)
            extra = f" {change * 100:+.1f}% {'time' if rate else 'CPU'} |"
        print(f"| {label} | {cells} |{extra}")
    for m in modes:
        apply_ratio = runs[m]["raw"] / runs[m]["apply"]
        print(
            f"\n{names[m]}: apply is {apply_ratio:.2f}x the floor's time; "
            f"{runs[m]['records']:.0f} reconciles traced"
        )


if __name__ == "__main__":
    asyncio.run(main())
