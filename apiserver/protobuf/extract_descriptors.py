"""Regenerate `descriptors.binpb`: Kubernetes' protobuf schemas, taken from kubectl itself.

    .venv/bin/python apiserver/protobuf/extract_descriptors.py [/usr/bin/kubectl]

Go programs built with gogo-protobuf carry each .proto file's descriptor as a
gzipped FileDescriptorProto. Reading them out of the kubectl binary gives the
exact field numbers kubectl encodes with, for the Kubernetes version it is.
"""

from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path

from google.protobuf import descriptor_pb2

WANTED = (
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto",
    "k8s.io/apimachinery/pkg/runtime/generated.proto",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/discovery/v1/generated.proto",
    "k8s.io/api/events/v1/generated.proto",
    "k8s.io/api/batch/v1/generated.proto",
    "k8s.io/api/autoscaling/v2/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
    "k8s.io/api/authentication/v1/generated.proto",
    "k8s.io/api/certificates/v1/generated.proto",
)
GZIP = re.compile(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00[\x00\x02]\xff")


def extract(binary: Path) -> descriptor_pb2.FileDescriptorSet:
    data = binary.read_bytes()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for match in GZIP.finditer(data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(
                data[match.start() : match.start() + 4_000_000]
            )
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # not a descriptor: gzip data of some other kind
            continue
        if fd.name in WANTED:
            files[fd.name] = fd
    missing = [n for n in WANTED if n not in files]
    if missing:
        raise SystemExit(f"not found in {binary}: {', '.join(missing)}")
    out = descriptor_pb2.FileDescriptorSet()
    for name in WANTED:  # dependencies first
        fd = files[name]
        kept = [d for d in fd.dependency if d in WANTED]  # drop what we do not ship
        del fd.dependency[:]
        fd.dependency.extend(kept)
        out.file.append(fd)
    return out


def main() -> None:
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/kubectl")
    target = Path(__file__).with_name("descriptors.binpb")
    target.write_bytes(extract(binary).SerializeToString())
    print(f"wrote {target} from {binary}")


if __name__ == "__main__":
    main()
