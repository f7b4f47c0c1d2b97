"""`make proto`: compile proto/ into libs/contracts/src/switchboard/v1 (the one home of generated code).

`generate(out_dir)` is also used by the test that fails when the committed code is stale.
`descriptor_set()` compiles the same files into a FileDescriptorSet, for what is generated from the
descriptors rather than by protoc's plugins: the CTI JSON Schemas (platform.schemagen) and the
versioning check against the previous contract (platform.protocompat).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

# libs/platform/src/switchboard/platform/protogen.py → the repository root
ROOT = Path(__file__).resolve().parents[5]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "contracts" / "src"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def _protoc(*options: str) -> None:
    import importlib.resources

    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", *options, *[str(p.relative_to(PROTO_DIR)) for p in proto_files()]]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def generate(out_dir: Path = OUT_DIR) -> None:
    _protoc(f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}")


def descriptor_set(*, source_info: bool = False) -> descriptor_pb2.FileDescriptorSet:
    """proto/ compiled into one FileDescriptorSet, its imports (google/protobuf/*) included.

    `source_info` keeps the comments (the JSON Schemas' descriptions come from them); the versioning
    baseline leaves them out, so that rewording a comment does not change it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "descriptors.binpb"
        _protoc("--include_imports", f"--descriptor_set_out={out}", *(["--include_source_info"] if source_info else []))
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
    print(f"generated {len(proto_files())} proto files into {OUT_DIR / 'switchboard' / 'v1'}")
