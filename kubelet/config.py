"""From a Pod spec to the runtime's sandbox and container configs (proto/runtime.proto).

Pure functions, one per part of the translation, each doing what the kubelet
does with the same fields:
- the sandbox: hostname, DNS (ClusterFirst, Default, None, dnsConfig), host
  ports, host namespaces, the pod's cgroup (`kubepods/<qos>/pod<uid>`, named
  relative to the runtime's cgroup root: the runtime owns that tree), labels
  and the log directory that `kubectl logs` reads;
- a container: command and args with `$(VAR)` expanded (the runtime applies
  them against the image's Entrypoint and Cmd), env, mounts, working dir,
  cgroup resources from requests and limits, the OOM score adjustment of its
  QoS class, and its security context (runAsNonRoot is checked here, against
  the image's user).
"""

from __future__ import annotations

from typing import Any

from api.quantity import milli_value, value
from proto import runtime_pb2 as pb

from .env import expand, mapping_for
from .sync import pod_ref

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"

CPU_PERIOD = 100_000  # microseconds, the kernel's and the kubelet's default CFS period
MIN_SHARES, MIN_QUOTA = 2, 1_000
GUARANTEED_OOM_SCORE_ADJ, BEST_EFFORT_OOM_SCORE_ADJ = -997, 1000


class ConfigError(Exception):
    """The container cannot be configured as asked: CreateContainerConfigError."""


# -- the sandbox ----------------------------------------------------------------------------


def pod_labels(pod: dict[str, Any]) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        POD_NAME: meta["name"],
        POD_NAMESPACE: meta.get("namespace", "default"),
        POD_UID: meta["uid"],
    }


def log_directory(pod: dict[str, Any], log_dir: str) -> str:
    """`/var/log/pods/<namespace>_<name>_<uid>`, where `kubectl logs` finds a pod's logs."""
    meta = pod["metadata"]
    return f"{log_dir.rstrip('/')}/{meta.get('namespace', 'default')}_{meta['name']}_{meta['uid']}"


def hostname(pod: dict[str, Any]) -> str:
    """spec.hostname, else the pod's name (at most 63 characters, as a label)."""
    return (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63].rstrip("-.")


def host_domain(pod: dict[str, Any], cluster_domain: str) -> str:
    """The pod's DNS domain when it names a subdomain (a StatefulSet's pods name their
    headless Service): `<subdomain>.<namespace>.svc.<cluster domain>`, as the kubelet's
    GeneratePodHostNameAndDomain; "" otherwise."""
    subdomain = pod["spec"].get("subdomain")
    if not subdomain:
        return ""
    namespace = pod["metadata"].get("namespace", "default")
    return f"{str(subdomain)[:63]}.{namespace}.svc.{cluster_domain}"


def host_aliases(pod: dict[str, Any]) -> list[pb.HostAlias]:
    return [
        pb.HostAlias(
            ip=str(a.get("ip") or ""), hostnames=[str(h) for h in a.get("hostnames") or []]
        )
        for a in pod["spec"].get("hostAliases") or []
        if a.get("ip") and a.get("hostnames")
    ]


def dns_config(
    pod: dict[str, Any], *, cluster_dns: str, cluster_domain: str, host_resolv: pb.DNSConfig
) -> pb.DNSConfig:
    """The pod's resolv.conf, by dnsPolicy. ClusterFirst (the default) points at the
    cluster DNS with the namespace's search list; a hostNetwork pod uses the node's
    unless it says ClusterFirstWithHostNet; `dnsConfig` adds to (or, with None, is) it."""
    spec = pod["spec"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    ns = pod["metadata"].get("namespace", "default")
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns:
        servers = [cluster_dns]
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        searches += [s for s in host_resolv.searches if s not in searches]
        options = ["ndots:5"]
    elif policy == "None":
        servers, searches, options = [], [], []
    else:
        servers = list(host_resolv.servers)
        searches = list(host_resolv.searches)
        options = list(host_resolv.options)
    extra = spec.get("dnsConfig") or {}
    servers += [s for s in extra.get("nameservers") or [] if s not in servers]
    searches += [s for s in extra.get("searches") or [] if s not in searches]
    for option in extra.get("options") or []:
        text = option["name"] + (f":{option['value']}" if option.get("value") else "")
        options = [o for o in options if o.split(":")[0] != option["name"]] + [text]
    return pb.DNSConfig(servers=servers[:3], searches=searches[:32], options=options)


def port_mappings(pod: dict[str, Any]) -> list[pb.PortMapping]:
    return [
        pb.PortMapping(
            protocol=p.get("protocol") or "TCP",
            container_port=int(p["containerPort"]),
            host_port=int(p.get("hostPort") or 0),
            host_ip=p.get("hostIP") or "",
        )
        for c in pod["spec"]["containers"]
        for p in c.get("ports") or []
    ]


def cgroup_parent(pod: dict[str, Any], qos: str) -> str:
    """`kubepods/burstable/pod<uid>`, `kubepods/besteffort/pod<uid>`, or for Guaranteed
    pods `kubepods/pod<uid>`: the kubelet's cgroup tree, relative to the runtime's root."""
    uid = pod["metadata"]["uid"]
    return f"kubepods/pod{uid}" if qos == "Guaranteed" else f"kubepods/{qos.lower()}/pod{uid}"


def pod_resources(pod: dict[str, Any]) -> pb.LinuxContainerResources:
    """Pod-level limits on the pod cgroup: the sum over app containers when each has one
    (the larger of that and any init container's), else none for that resource."""
    spec = pod["spec"]

    def total(name: str, read: Any) -> int:
        apps = [
            ((c.get("resources") or {}).get("limits") or {}).get(name) for c in spec["containers"]
        ]
        if any(v is None for v in apps):
            return 0
        inits = [
            read(v)
            for c in spec.get("initContainers") or []
            if (v := ((c.get("resources") or {}).get("limits") or {}).get(name)) is not None
        ]
        return max([sum(read(v) for v in apps), *inits])

    millis, memory = total("cpu", milli_value), total("memory", value)
    return pb.LinuxContainerResources(
        cpu_period=CPU_PERIOD if millis else 0,
        cpu_quota=max(millis * CPU_PERIOD // 1000, MIN_QUOTA) if millis else 0,
        memory_limit_in_bytes=memory,
    )


def sandbox_config(
    pod: dict[str, Any],
    *,
    attempt: int,
    qos: str,
    log_dir: str,
    cluster_dns: str,
    cluster_domain: str,
    host_resolv: pb.DNSConfig,
) -> pb.PodSandboxConfig:
    spec, meta = pod["spec"], pod["metadata"]
    node, pod_ns = pb.NamespaceOption.NODE, pb.NamespaceOption.POD
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(
            name=meta["name"],
            uid=meta["uid"],
            namespace=meta.get("namespace", "default"),
            attempt=attempt,
        ),
        hostname=hostname(pod),
        log_directory=log_directory(pod, log_dir),
        dns_config=dns_config(
            pod, cluster_dns=cluster_dns, cluster_domain=cluster_domain, host_resolv=host_resolv
        ),
        port_mappings=port_mappings(pod),
        labels=pod_labels(pod),
        annotations=dict(meta.get("annotations") or {}),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent(pod, qos),
            namespace_options=pb.NamespaceOption(
                network=node if spec.get("hostNetwork") else pod_ns,
                pid=node
                if spec.get("hostPID")
                else (
                    pod_ns if spec.get("shareProcessNamespace") else pb.NamespaceOption.CONTAINER
                ),
                ipc=node if spec.get("hostIPC") else pod_ns,
            ),
            sysctls={
                s["name"]: str(s["value"])
                for s in (spec.get("securityContext") or {}).get("sysctls") or []
            },
            resources=pod_resources(pod),
        ),
        host_domain=host_domain(pod, cluster_domain),
        host_aliases=host_aliases(pod),
    )


# -- a container ----------------------------------------------------------------------------


def linux_resources(
    container: dict[str, Any], *, qos: str, node_memory: int
) -> pb.LinuxContainerResources:
    """cpu.shares from the CPU request, a CFS quota from the CPU limit, the memory limit,
    and the OOM score adjustment of the pod's QoS class, as the kubelet computes them."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    cpu_request = requests.get("cpu", limits.get("cpu"))
    memory_request = requests.get("memory", limits.get("memory"))
    shares = MIN_SHARES
    if cpu_request is not None:
        shares = max(milli_value(cpu_request) * 1024 // 1000, MIN_SHARES)
    out = pb.LinuxContainerResources(cpu_shares=shares, oom_score_adj=oom_score_adj(
        qos, value(memory_request) if memory_request is not None else 0, node_memory
    ))  # fmt: skip
    if "cpu" in limits:
        out.cpu_period = CPU_PERIOD
        out.cpu_quota = max(milli_value(limits["cpu"]) * CPU_PERIOD // 1000, MIN_QUOTA)
    if "memory" in limits:
        out.memory_limit_in_bytes = value(limits["memory"])
    return out


def oom_score_adj(qos: str, memory_request: int, node_memory: int) -> int:
    """Guaranteed -997, BestEffort 1000; Burstable 1000 - 1000*request/capacity, kept
    within 2..999 so it stays between the other two, as the kubelet's policy says."""
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    adj = 1000 - (1000 * memory_request) // max(node_memory, 1)
    return min(max(adj, 2), 999)


def security_context(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    image_uid: int | None,
    image_user: str,
) -> pb.LinuxContainerSecurityContext:
    """The container's securityContext over the pod's; runAsNonRoot refused with the
    kubelet's words when the container would run as root or cannot be shown not to."""
    pod_sc = pod["spec"].get("securityContext") or {}
    sc = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return sc[key] if sc.get(key) is not None else pod_sc.get(key)

    run_as_user, run_as_group = pick("runAsUser"), pick("runAsGroup")
    where = f'(pod: "{pod_ref(pod)}", container: {container["name"]})'
    if pick("runAsNonRoot"):
        if run_as_user is not None:
            if int(run_as_user) == 0:
                raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        elif image_uid is None:
            raise ConfigError(
                f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                f"cannot verify user is non-root {where}"
            )
        elif image_uid == 0:
            raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")
    caps = sc.get("capabilities") or {}
    privileged = bool(sc.get("privileged"))
    escalation = sc.get("allowPrivilegeEscalation")
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None:
        groups.append(int(pod_sc["fsGroup"]))
    out = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(
            add_capabilities=list(caps.get("add") or []),
            drop_capabilities=list(caps.get("drop") or []),
        ),
        privileged=privileged,
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        supplemental_groups=groups,
        # allowPrivilegeEscalation defaults to true, but no_new_privs is what Docker and
        # the runtime set unless the container is privileged or asks for escalation.
        no_new_privs=not privileged and escalation is not True,
    )
    if run_as_user is not None:
        out.run_as_user, out.has_run_as_user = int(run_as_user), True
    if run_as_group is not None:
        out.run_as_group, out.has_run_as_group = int(run_as_group), True
    return out


def container_config(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    attempt: int,
    image: str,
    env: list[tuple[str, str]],
    mounts: list[tuple[str, str, bool]],
    resources: pb.LinuxContainerResources,
    security: pb.LinuxContainerSecurityContext,
) -> pb.ContainerConfig:
    name = container["name"]
    # `$(VAR)` in command and args takes the container's environment, as the kubelet
    # expands them (`$$` for a literal `$`; an unknown name stays as written).
    variables = mapping_for(dict(env))
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=image),
        command=[expand(word, variables) for word in container.get("command") or []],
        args=[expand(word, variables) for word in container.get("args") or []],
        working_dir=container.get("workingDir") or "",
        envs=[pb.KeyValue(key=k, value=v) for k, v in env],
        mounts=[pb.Mount(container_path=c, host_path=h, readonly=ro) for c, h, ro in mounts],
        labels={**pod_labels(pod), CONTAINER_NAME: name},
        annotations={"io.kubernetes.container.restartCount": str(attempt)},
        log_path=f"{name}/{attempt}.log",
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=pb.LinuxContainerConfig(resources=resources, security_context=security),
    )
