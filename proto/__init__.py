"""The runtime's gRPC contract (`runtime.proto` and its generated stubs) and where to reach it.

Every client of the runtime (the kubelet, `skiff crictl`) and the daemon
itself agree on the socket's default path through `DEFAULT_SOCKET`, so that
changing it is one edit. The stubs are `proto.runtime_pb2_grpc.RuntimeServiceStub`
and `ImageServiceStub`.
"""

from __future__ import annotations

import os

import grpc

DEFAULT_SOCKET = "/run/skiff/runtime.sock"


def connect(path: str | os.PathLike[str] = DEFAULT_SOCKET) -> grpc.aio.Channel:
    """An asyncio gRPC channel to the runtime daemon's unix socket (connects lazily)."""
    return grpc.aio.insecure_channel(f"unix://{os.fspath(path)}")
