"""`make proto`: compile proto/ into libs/contracts/src/switchboard/v1 (the one home of generated code).

`generate(out_dir)` is also used by the test that fails when the committed code is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

# libs/platform/src/switchboard/platform/protogen.py → the repository root
ROOT = Path(__file__).resolve().parents[5]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "contracts" / "src"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path = OUT_DIR) -> None:
    import importlib.resources

    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_DIR)) for p in proto_files()],
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
    print(f"generated {len(proto_files())} proto files into {OUT_DIR / 'switchboard' / 'v1'}")
