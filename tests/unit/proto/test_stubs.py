"""The committed gRPC stubs are what runtime.proto generates today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Lines that stamp the generator's own version rather than reflect the .proto.
VERSION_STAMPS = ("Protobuf Python Version", "_runtime_version.", "GRPC_GENERATED_VERSION =")


def _content(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    kept, skipping = [], False
    for line in lines:
        if line.startswith("_runtime_version.ValidateProtobufRuntimeVersion("):
            skipping = True
        if skipping:
            skipping = not line.strip().endswith(")")
            continue
        if not any(stamp in line for stamp in VERSION_STAMPS):
            kept.append(line)
    return kept


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    for name in ("runtime_pb2.py", "runtime_pb2.pyi", "runtime_pb2_grpc.py"):
        assert _content(tmp_path / name) == _content(ROOT / "proto" / name), (
            f"proto/{name} is stale: run .venv/bin/python proto/generate.py"
        )


def test_stubs_import_as_package_members() -> None:
    from proto import runtime_pb2, runtime_pb2_grpc

    status = runtime_pb2.ContainerStatus(
        id="c1", state=runtime_pb2.CONTAINER_EXITED, exit_code=137, reason="OOMKilled"
    )
    assert runtime_pb2.ContainerStatus.FromString(status.SerializeToString()) == status
    assert hasattr(runtime_pb2_grpc, "RuntimeServiceServicer")
    assert hasattr(runtime_pb2_grpc, "ImageServiceStub")
