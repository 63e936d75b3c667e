"""The files a pod's containers see at /etc/hosts, /etc/resolv.conf and /etc/hostname,
written the way the kubelet writes them (the runtime bind-mounts them in)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"


def cluster_first(
    namespace: str, dns: str = CLUSTER_DNS, domain: str = CLUSTER_DOMAIN
) -> tuple[list[str], list[str], list[str]]:
    """Nameservers, search domains and options for dnsPolicy ClusterFirst."""
    return ([dns], [f"{namespace}.svc.{domain}", f"svc.{domain}", domain], ["ndots:5"])


def write_pod_files(
    directory: Path,
    *,
    hostname: str,
    ip: str,
    dns_servers: list[str],
    searches: list[str],
    options: list[str],
    host_aliases: Sequence[tuple[str, Sequence[str]]] = (),
    domain: str = "",
) -> dict[str, Path]:
    """`domain`: the pod's DNS domain when it has one (a subdomain): its own line then
    names it by FQDN first, as the kubelet writes it, so `hostname -f` gives the FQDN."""
    directory.mkdir(parents=True, exist_ok=True)
    hosts = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
        f"{ip}\t{hostname}.{domain}\t{hostname}" if domain else f"{ip}\t{hostname}",
    ]
    if host_aliases:
        hosts.append("")
        hosts.append("# Entries added by HostAliases.")
        hosts += [f"{alias_ip}\t{' '.join(names)}" for alias_ip, names in host_aliases]
    resolv = [f"search {' '.join(searches)}"] if searches else []
    resolv += [f"nameserver {s}" for s in dns_servers]
    if options:
        resolv.append(f"options {' '.join(options)}")
    files = {
        "hosts": "\n".join(hosts) + "\n",
        "resolv.conf": "\n".join(resolv) + "\n",
        "hostname": hostname + "\n",
    }
    paths = {}
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        paths[name] = path
    return paths
