"""Regenerate the Python stubs from runtime.proto:

    .venv/bin/python proto/generate.py [OUTPUT_DIR]

grpc_tools writes `import runtime_pb2` in the gRPC module; as a package member
it must be `from proto import runtime_pb2`, so that line is rewritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{HERE}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(HERE / "runtime.proto"),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    grpc_module = out / "runtime_pb2_grpc.py"
    text = grpc_module.read_text()
    grpc_module.write_text(
        text.replace(
            "import runtime_pb2 as runtime__pb2", "from proto import runtime_pb2 as runtime__pb2"
        )
    )


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
