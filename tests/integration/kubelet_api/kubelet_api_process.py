"""A KubeletServer alone, as the tests run it: without the kubelet's pod workers.

`pods(namespace, name)` answers from a cache of the API's pods refreshed by a
list every half second, which stands in for the kubelet's pod manager. The
chosen port is written to --port-file once the server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import signal
import ssl
import tempfile
from pathlib import Path

import grpc
import httpx
import yaml

from kubelet.authz import WebhookAuthorizer
from kubelet.server import KubeletServer


def api_client(kubeconfig: Path) -> httpx.AsyncClient:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = tempfile.NamedTemporaryFile(suffix=".crt", delete=False)
    ca.write(base64.b64decode(cluster["certificate-authority-data"]))
    ca.close()
    token = config["users"][0]["user"]["token"]
    return httpx.AsyncClient(
        base_url=cluster["server"],
        verify=ssl.create_default_context(cafile=ca.name),
        headers={"Authorization": f"Bearer {token}"},
    )


async def main() -> None:
    p = argparse.ArgumentParser()
    for flag in (
        "--socket",
        "--node",
        "--cert",
        "--key",
        "--client-ca",
        "--kubeconfig",
        "--port-file",
    ):
        p.add_argument(flag, required=True)
    a = p.parse_args()
    pods: dict[tuple[str, str], dict] = {}
    client = api_client(Path(a.kubeconfig))

    async def refresh() -> None:
        while True:
            try:
                r = await client.get(
                    "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={a.node}"}
                )
                items = r.json().get("items", [])
                pods.clear()
                pods.update({(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in items})
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.5)

    async def post_review(review: dict) -> dict:
        """Callers are authorized by the apiserver (SubjectAccessReview), as a kubelet's are."""
        r = await client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
        r.raise_for_status()
        return dict(r.json())

    channel = grpc.aio.insecure_channel(f"unix://{a.socket}")
    server = KubeletServer(
        node_name=a.node,
        channel=channel,
        pods=lambda ns, name: pods.get((ns, name)),
        bind_address="127.0.0.1",
        port=0,
        cert_file=Path(a.cert),
        key_file=Path(a.key),
        client_ca_file=Path(a.client_ca),
        authorizer=WebhookAuthorizer(a.node, post_review),
    )
    refresher = asyncio.create_task(refresh())
    await server.start()
    await asyncio.to_thread(Path(a.port_file).write_text, str(server.port))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    refresher.cancel()
    await server.stop()
    await channel.close()


if __name__ == "__main__":
    asyncio.run(main())
