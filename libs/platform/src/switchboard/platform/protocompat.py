"""The versioning check of switchboard.v1: the current proto against the previous contract (docs/CTI.md "Versioning").

Within switchboard.v1 changes are additive only: new fields, messages, enum values, RPCs. A field,
message, enum value or RPC is never removed, renumbered, renamed or given another type. The check is
`buf breaking` (the Buf CLI, the `buf-bin` dev dependency) with its PACKAGE rules: wire and JSON
compatibility (numbers, types, names, since the JSON form carries the field names) and generated-code
compatibility (messages, enums, services and RPCs kept), types free to move between files of the package.

The previous contract is proto/baseline/switchboard.v1.txtpb: the FileDescriptorSet of proto/ in
protobuf text format (reviewable in a diff; no comments, so rewording one changes nothing).
`make proto-baseline` writes it from the current proto/: run it when a release is cut, after
the check passed, and commit it with the release.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, text_format

from switchboard.platform.protogen import ROOT, descriptor_set

BASELINE = ROOT / "proto" / "baseline" / "switchboard.v1.txtpb"
# buf's rule set: FILE would also refuse moving a type to another .proto file of the package (no
# client sees that); WIRE_JSON alone would allow removing a message or an RPC, which breaks the
# generated code of every client.
_BUF_CONFIG = json.dumps({"version": "v2", "breaking": {"use": ["PACKAGE"]}})


@dataclass(frozen=True)
class Break:
    """One breaking change, as buf names it (FIELD_NO_DELETE, ENUM_VALUE_SAME_NAME, RPC_SAME_REQUEST_TYPE, ...)."""

    rule: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message} [{self.rule}]"


def _buf() -> str:
    # The dev dependency installs `buf` beside this interpreter (the venv's bin/), on PATH or not.
    here = Path(sysconfig.get_path("scripts")) / "buf"
    found = str(here) if here.exists() else shutil.which("buf")
    if found is None:
        raise RuntimeError("buf not found: it comes with the dev dependencies (`make install`)")
    return found


def load(path: Path | None = None) -> descriptor_pb2.FileDescriptorSet:
    """The previous contract (BASELINE unless `path`)."""
    return text_format.Parse((path or BASELINE).read_text(), descriptor_pb2.FileDescriptorSet())


def render(fds: descriptor_pb2.FileDescriptorSet) -> str:
    return text_format.MessageToString(fds)


def breaking_changes(current: descriptor_pb2.FileDescriptorSet, previous: descriptor_pb2.FileDescriptorSet) -> list[Break]:
    """What in `current` breaks a client of `previous` (empty when the change is additive)."""
    with tempfile.TemporaryDirectory() as tmp:
        cur, prev = Path(tmp) / "current.binpb", Path(tmp) / "previous.binpb"
        cur.write_bytes(current.SerializeToString())
        prev.write_bytes(previous.SerializeToString())
        proc = subprocess.run(
            [_buf(), "breaking", str(cur), "--against", str(prev), "--config", _BUF_CONFIG, "--error-format", "json"],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,  # no buf.yaml of the repository applies
        )
    # buf exits 100 when it found breaking changes, one JSON object per line on stdout.
    if proc.returncode not in (0, 100):
        raise RuntimeError(f"buf breaking failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    found = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return [Break(rule=f["type"], file=f["path"], message=f["message"]) for f in found]


def write_baseline(path: Path | None = None) -> None:
    path = path or BASELINE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(descriptor_set()))


def main(argv: list[str]) -> int:
    """`python -m switchboard.platform.protocompat [check|baseline]`."""
    if argv[:1] == ["baseline"]:
        write_baseline()
        print(f"wrote {BASELINE.relative_to(ROOT)} from proto/")
        return 0
    breaks = breaking_changes(descriptor_set(), load())
    for b in breaks:
        print(b)
    if breaks:
        print(
            f"{len(breaks)} breaking change(s) against {BASELINE.relative_to(ROOT)}: switchboard.v1 takes additive changes only"
        )
        return 1
    print(f"proto/ is compatible with {BASELINE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
