"""Fuzzing the API with mutated objects: never a 5xx, nothing stored that cannot be read.

Valid objects of several kinds are mutated at random (a seeded generator, a
bounded number of cases): values replaced by values of other types and
sizes, keys deleted or added, lists and maps swapped, numbers past their
formats, strings with surrogates and control characters, the JSON text itself
truncated or corrupted. Each case is sent as a create, an update, a merge,
strategic merge or JSON patch, or a list with odd query options, to a real
apiserver (its own, with its own etcd) over HTTPS.

The server must answer every case with something other than a 5xx, every
object it acknowledged must still be readable afterwards, every list of every
resource must answer 200 with JSON (and as kubectl's Table), the real kubectl
must read every resource, and the server must be healthy at the end.
The counts are printed (run with -s to see them) and recorded in
docs/security-input.md.

SKIFF_FUZZ_SEED and SKIFF_FUZZ_CASES change the seed and the number of cases.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

SEED = int(os.environ.get("SKIFF_FUZZ_SEED", "11"))
CASES = int(os.environ.get("SKIFF_FUZZ_CASES", "2000"))
NS = "fuzz"

# (collection path, namespaced, a valid object)
KINDS: dict[str, tuple[str, bool, dict[str, Any]]] = {
    "Pod": (
        "/api/v1/namespaces/NS/pods",
        True,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "a"}, "annotations": {"n": "v"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox:1.36",
                        "command": ["sleep", "3600"],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "1"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
                    }
                ],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "terminationGracePeriodSeconds": 5,
            },
        },
    ),
    "Deployment": (
        "/apis/apps/v1/namespaces/NS/deployments",
        True,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1},
                },
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                },
            },
        },
    ),
    "ReplicaSet": (
        "/apis/apps/v1/namespaces/NS/replicasets",
        True,
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "r"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "r"}},
                "template": {
                    "metadata": {"labels": {"app": "r"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                },
            },
        },
    ),
    "Service": (
        "/api/v1/namespaces/NS/services",
        True,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "a"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ),
    "ConfigMap": (
        "/api/v1/namespaces/NS/configmaps",
        True,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": []},
            "data": {"k": "v", "file.txt": "hello"},
        },
    ),
    "Secret": (
        "/api/v1/namespaces/NS/secrets",
        True,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sec"},
            "type": "Opaque",
            "data": {"k": "dg=="},
        },
    ),
    "Lease": (
        "/apis/coordination.k8s.io/v1/namespaces/NS/leases",
        True,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    ),
    "EndpointSlice": (
        "/apis/discovery.k8s.io/v1/namespaces/NS/endpointslices",
        True,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "es", "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    ),
    "Namespace": (
        "/api/v1/namespaces",
        False,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fz"}},
    ),
    "Node": (
        "/api/v1/nodes",
        False,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n", "labels": {"kubernetes.io/hostname": "n"}},
            "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2", "memory": "1Gi", "pods": "110"}},
        },
    ),
}

STRINGS = [
    "",
    "x",
    "a\nb",
    "tab\there",
    "nul\x00byte",
    "über",
    "\U0001f600",
    "-",
    "0",
    "true",
    "null",
    " ",
    "a" * 300,
    "$patch",
    "Always",
    "None",
    "1e400",
    "500m",
    "128Mi",
    "-1",
    "10.0.0.1",
    "UPPER_case",
    "a/b",
    "../..",
    "%00",
    '"quoted"',
    "\\",
]
NUMBERS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, 2**64, 10**30, -(10**30)]
FLOATS = [0.5, -0.0, 1e308, 3.0, 1e-300, 2.5e9]
KEYS = ["x", "", "a\nb", "$patch", "$retainKeys", "ü", "metadata", "spec", "kind", "0", "a.b"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(12 if depth < 3 else 7)
    if pick < 2:
        return rng.choice(STRINGS)
    if pick < 4:
        return rng.choice(NUMBERS)
    if pick == 4:
        return rng.choice(FLOATS)
    if pick == 5:
        return rng.choice([True, False])
    if pick == 6:
        return None
    if pick in (7, 8):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def same_type(rng: random.Random, value: Any) -> Any:
    """Another value of `value`'s JSON type: odd, but well typed."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice(NUMBERS)
    if isinstance(value, float):
        return rng.choice(FLOATS)
    if isinstance(value, str):
        return rng.choice(STRINGS)
    if isinstance(value, list):
        return rng.choice([[], value + value, value[:1] * 3])
    if isinstance(value, dict):
        return rng.choice([{}, {k: v for k, v in value.items() if rng.random() < 0.5}])
    return value


def locations(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON tree."""
    if isinstance(value, dict):
        for key in value:
            out.append((value, key))
            locations(value[key], out)
    elif isinstance(value, list):
        for i in range(len(value)):
            out.append((value, i))
            locations(value[i], out)
    return out


def mutate(rng: random.Random, obj: dict[str, Any]) -> None:
    """One random change to a JSON tree, in place."""
    spots = locations(obj, [])
    if not spots:
        obj[rng.choice(KEYS)] = random_value(rng)
        return
    parent, key = rng.choice(spots)
    op = rng.randrange(10)
    if op >= 7:  # a value of the same type: past the type check, into defaulting and validation
        parent[key] = same_type(rng, parent[key])
    elif op <= 2:
        parent[key] = random_value(rng)
    elif op == 3:
        del parent[key]
    elif op == 4:  # a value from elsewhere in the object: the right shape in the wrong place
        _, other_key = rng.choice(spots)
        other_parent, _ = rng.choice(spots)
        if isinstance(other_parent, dict) and other_key in other_parent:
            parent[key] = copy.deepcopy(other_parent[other_key])
        elif isinstance(other_parent, list) and isinstance(other_key, int):
            if other_key < len(other_parent):
                parent[key] = copy.deepcopy(other_parent[other_key])
    elif op == 5:
        target = parent[key]
        if isinstance(target, dict):
            target[rng.choice(KEYS)] = random_value(rng)
        elif isinstance(target, list):
            target.append(copy.deepcopy(target[0]) if target else random_value(rng))
        else:
            parent[key] = [target]
    else:
        parent[key] = {"nested": parent[key]} if rng.random() < 0.5 else str(parent[key])


def corrupt_text(rng: random.Random, text: str) -> str:
    """A change to the JSON text itself: what a mutated object cannot express."""
    op = rng.randrange(8)
    if op == 0:
        return text[: rng.randrange(1, max(2, len(text)))]
    if op == 1:  # a lone surrogate in some string
        at = text.find('"', rng.randrange(len(text)))
        return (
            text if at < 0 else text[: at + 1] + rng.choice(["\\ud800", "\\udfff"]) + text[at + 1 :]
        )
    if op == 2:
        deep = rng.choice([50, 99, 101, 500, 5000])
        return text[:-1] + ', "deep": ' + "[" * deep + "]" * deep + "}"
    if op == 3:
        return text.replace(
            "1", rng.choice(["1e400", "NaN", "9223372036854775808", "1.5", "-0"]), 1
        )
    if op == 4:
        return text[:-1] + ', "dup": 1, "dup": 2}'
    if op == 5:
        at = rng.randrange(len(text))
        return text[:at] + rng.choice(["\x00", "\\", '"', "{", "]", ",", "\\u0000"]) + text[at:]
    if op == 6:
        return text.replace('"name"', '"na\\nme"', 1)
    return text.replace('"', "'", 1)


@dataclass
class Tally:
    cases: int = 0
    by_code: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (collection, name)

    def record(self, what: str, response: httpx.Response) -> None:
        self.by_code[response.status_code] = self.by_code.get(response.status_code, 0) + 1
        if response.status_code == 504 and "ResourceVersionTooLarge" in response.text:
            return  # Kubernetes' answer to a list from a revision not reached yet
        if response.status_code >= 500:
            self.server_errors.append(f"{what}: {response.status_code} {response.text[:300]}")
            return
        try:
            body = response.json()
        except ValueError:
            self.malformed.append(f"{what}: {response.status_code} {response.text[:200]}")
            return
        if response.status_code >= 400 and body.get("kind") != "Status":
            self.malformed.append(f"{what}: {response.status_code} {response.text[:200]}")


def send(client: httpx.Client, tally: Tally, what: str, call: Callable[[], httpx.Response]) -> Any:
    tally.cases += 1
    try:
        response = call()
    except httpx.TransportError as e:  # a dropped connection is the worst answer of all
        tally.server_errors.append(f"{what}: transport error {e!r}")
        return None
    tally.record(what, response)
    return response


def collection(kind: str) -> str:
    return KINDS[kind][0].replace("NS", NS)


def run_case(client: httpx.Client, rng: random.Random, tally: Tally, i: int) -> None:
    kind = rng.choice(list(KINDS))
    url = collection(kind)
    base = copy.deepcopy(KINDS[kind][2])
    base["metadata"]["name"] = f"{base['metadata']['name']}-{i}"
    mode = rng.random()
    if mode < 0.05:  # a list with odd options
        params = {
            rng.choice(
                [
                    "limit",
                    "resourceVersion",
                    "resourceVersionMatch",
                    "continue",
                    "fieldSelector",
                    "labelSelector",
                    "timeoutSeconds",
                ]
            ): str(rng.choice([*STRINGS, *NUMBERS, *FLOATS]))
        }
        if rng.random() < 0.3:
            params["resourceVersionMatch"] = rng.choice(["Exact", "NotOlderThan", "x"])
        send(client, tally, f"list {kind} {params}", lambda: client.get(url, params=params))
        return
    for _ in range(rng.randrange(1, 4)):
        mutate(rng, base)
    text = json.dumps(base)
    raw_text = rng.random() < 0.2
    if raw_text:
        text = corrupt_text(rng, text)
    as_yaml = not raw_text and rng.random() < 0.15
    if as_yaml:
        content = yaml.safe_dump(base, allow_unicode=True).encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/yaml"}
    else:
        content = text.encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/json"}
    what = f"case {i} {kind}"
    if mode < 0.6:
        response = send(
            client,
            tally,
            f"{what} create",
            lambda: client.post(url, content=content, headers=headers),
        )
        if response is not None and response.status_code == 201:
            tally.acknowledged.append((url, response.json()["metadata"]["name"]))
        return
    target = f"{url}/{KINDS[kind][2]['metadata']['name']}-base"
    if mode < 0.67:
        other_verb(client, rng, tally, what, kind, url, target, base, raw_text)
        return
    if mode < 0.75:  # replace the base object with a mutated one
        current = client.get(target).json()
        for _ in range(rng.randrange(1, 4)):
            mutate(rng, current)
        body = json.dumps(current)
        if raw_text:
            body = corrupt_text(rng, body)
        send(
            client,
            tally,
            f"{what} update",
            lambda: client.put(
                target,
                content=body.encode("utf-8", "surrogatepass"),
                headers={"Content-Type": "application/json"},
            ),
        )
        return
    if mode < 0.9:
        media = rng.choice(
            ["application/merge-patch+json", "application/strategic-merge-patch+json"]
        )
        patch = {
            k: v for k, v in base.items() if k not in ("apiVersion", "kind") and rng.random() < 0.6
        }
        if isinstance(patch.get("metadata"), dict):
            patch["metadata"].pop("name", None)
        body = json.dumps(patch)
        if raw_text:
            body = corrupt_text(rng, body)
        send(
            client,
            tally,
            f"{what} {media}",
            lambda: client.patch(
                target,
                content=body.encode("utf-8", "surrogatepass"),
                headers={"Content-Type": media},
            ),
        )
        return
    paths = [
        "/metadata/labels/x",
        "/metadata/annotations",
        "/spec",
        "/spec/replicas",
        "/spec/containers/0/image",
        "/data/k",
        "/metadata",
        "/status",
        "/x",
        "/spec/ports/0",
        "/metadata/finalizers/-",
        "/spec/template/spec/containers/0",
    ]
    ops = [
        {
            "op": rng.choice(["add", "replace", "remove", "copy", "move", "test", "explode"]),
            "path": rng.choice(paths),
            "from": rng.choice(paths),
            "value": random_value(rng),
        }
        for _ in range(rng.randrange(1, 4))
    ]
    body = json.dumps(ops)
    if raw_text:
        body = corrupt_text(rng, body)
    send(
        client,
        tally,
        f"{what} json-patch",
        lambda: client.patch(
            target,
            content=body.encode("utf-8", "surrogatepass"),
            headers={"Content-Type": "application/json-patch+json"},
        ),
    )


def other_verb(
    client: httpx.Client,
    rng: random.Random,
    tally: Tally,
    what: str,
    kind: str,
    url: str,
    target: str,
    mutated: dict[str, Any],
    raw_text: bool,
) -> None:
    """The other ways in: /status, /scale, /binding, namespace finalize, apply, delete."""
    choice = rng.randrange(6)
    if choice == 0:  # /status with a mutated object
        current = client.get(target).json()
        for _ in range(rng.randrange(1, 3)):
            mutate(rng, current)
        method, path, media, doc = "PUT", f"{target}/status", "application/json", current
    elif choice == 1 and kind in ("Deployment", "ReplicaSet"):
        scale = client.get(f"{target}/scale").json()
        mutate(rng, scale)
        method, path, media, doc = "PUT", f"{target}/scale", "application/json", scale
    elif choice == 1 and kind == "Namespace":
        current = client.get(target).json()
        mutate(rng, current)
        method, path, media, doc = "PUT", f"{target}/finalize", "application/json", current
    elif choice == 2:  # a binding of a fresh pod
        pod = copy.deepcopy(KINDS["Pod"][2])
        pod["metadata"]["name"] = f"bind-{rng.randrange(10**9)}"
        created = client.post(collection("Pod"), json=pod)
        if created.status_code == 201:
            tally.acknowledged.append((collection("Pod"), pod["metadata"]["name"]))
        binding: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod["metadata"]["name"]},
            "target": {"kind": "Node", "name": "n-base"},
        }
        mutate(rng, binding)
        path = f"{collection('Pod')}/{pod['metadata']['name']}/binding"
        method, media, doc = "POST", "application/json", binding
    elif choice == 3:  # server-side apply of the mutated object
        name = f"apply-{rng.randrange(10**9)}"
        if isinstance(mutated.get("metadata"), dict):
            mutated["metadata"]["name"] = name
        params = "?fieldManager=fuzz" + ("&force=true" if rng.random() < 0.5 else "")
        method, path, media, doc = (
            "PATCH",
            f"{url}/{name}{params}",
            "application/apply-patch+yaml",
            mutated,
        )
    else:  # delete (of a fresh object) with mutated DeleteOptions
        fresh = copy.deepcopy(KINDS[kind][2])
        fresh["metadata"]["name"] = f"del-{rng.randrange(10**9)}"
        client.post(url, json=fresh)
        options: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Background",
            "preconditions": {"uid": ""},
        }
        mutate(rng, options)
        method, path, media, doc = "DELETE", f"{url}/{fresh['metadata']['name']}", "", options
    body = json.dumps(doc)
    if raw_text:
        body = corrupt_text(rng, body)
    headers = {"Content-Type": media or "application/json"}
    response = send(
        client,
        tally,
        f"{what} {method} {path.rsplit('/', 1)[-1]}",
        lambda: client.request(
            method, path, content=body.encode("utf-8", "surrogatepass"), headers=headers
        ),
    )
    if response is not None and response.status_code == 201 and choice == 3:
        tally.acknowledged.append((url, response.json()["metadata"]["name"]))


def every_resource(client: httpx.Client) -> list[str]:
    """The collection path of every resource the server lists in discovery."""
    out = []
    groups = [("", "/api/v1")]
    for group in client.get("/apis").json()["groups"]:
        groups.append((group["name"], f"/apis/{group['preferredVersion']['groupVersion']}"))
    for _, prefix in groups:
        for resource in client.get(prefix).json()["resources"]:
            if "/" not in resource["name"] and "list" in resource.get("verbs", []):
                out.append(f"{prefix}/{resource['name']}")
    return out


def test_mutated_objects_never_break_the_server(start_apiserver: Any) -> None:
    server = start_apiserver()
    rng = random.Random(SEED)
    tally = Tally()
    with server.client() as client:
        r = client.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
        assert r.status_code == 201, r.text
        for kind, (_, _, obj) in KINDS.items():
            base = copy.deepcopy(obj)
            base["metadata"]["name"] = f"{obj['metadata']['name']}-base"
            r = client.post(collection(kind), json=base)
            assert r.status_code == 201, (kind, r.text)

        for i in range(CASES):
            run_case(client, rng, tally, i)

        # Everything acknowledged is still there and readable.
        lost, unreadable = [], []
        for url, name in tally.acknowledged:
            r = client.get(f"{url}/{name}")
            if r.status_code == 404:
                lost.append(f"{url}/{name}")
            elif r.status_code != 200 or r.json()["metadata"]["name"] != name:
                unreadable.append(f"{url}/{name}: {r.status_code} {r.text[:200]}")
        # Every list of every resource answers, in JSON and as kubectl's Table.
        broken_lists = []
        resources = every_resource(client)
        for url in resources:
            for headers in ({}, {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}):
                r = client.get(url, headers=headers)
                if r.status_code != 200:
                    broken_lists.append(f"{url}: {r.status_code} {r.text[:200]}")
                else:
                    r.json()
        # And the real kubectl (Go) reads every object of every resource, as JSON
        # and as its table: nothing stored that a Go client cannot decode. One kubectl
        # for all resources (it names each one it cannot read, and exits non-zero).
        kubectl_failures = []
        names = [
            url.rsplit("/", 1)[-1] + ("." + url.split("/")[2] if "/apis/" in url else "")
            for url in resources
        ]
        for output in (["-o", "json"], []):
            result = subprocess.run(
                [
                    server.kubectl_binary,
                    "--kubeconfig",
                    str(server.kubeconfig),
                    *("get", ",".join(names), "-A", *output),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if result.returncode != 0:
                kubectl_failures.append(f"kubectl get {output}: {result.stderr[-3000:]}")
            elif output:
                read = {item["kind"] for item in json.loads(result.stdout)["items"]}
                assert read >= {kind for kind in KINDS}, read
        healthy = {path: client.get(path).status_code for path in ("/readyz", "/livez")}
        still_works = client.post(
            collection("ConfigMap"), json={"metadata": {"name": "after"}, "data": {"a": "b"}}
        ).status_code

    summary = {
        "seed": SEED,
        "cases": tally.cases,
        "answers by code": dict(sorted(tally.by_code.items())),
        "5xx or dropped": len(tally.server_errors),
        "malformed answers": len(tally.malformed),
        "objects acknowledged": len(tally.acknowledged),
        "objects lost": len(lost),
        "objects unreadable": len(unreadable),
        "resources listed": len(resources),
        "lists failing": len(broken_lists),
        "kubectl reads failing": len(kubectl_failures),
    }
    print("\nfuzz summary:", json.dumps(summary))
    assert not tally.server_errors, tally.server_errors[:10]
    assert not tally.malformed, tally.malformed[:10]
    assert not lost, lost[:10]
    assert not unreadable, unreadable[:10]
    assert not broken_lists, broken_lists
    assert not kubectl_failures, kubectl_failures
    assert healthy == {"/readyz": 200, "/livez": 200}
    assert still_works == 201
    assert tally.cases >= CASES
    assert tally.acknowledged, "no mutated object was valid: the fuzzer is not reaching storage"
    assert len(tally.by_code) > 3, tally.by_code
