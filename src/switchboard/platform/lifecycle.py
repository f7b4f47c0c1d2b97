"""Process lifecycle shared by every service entrypoint.

- `run_service(main)`: runs `main(stop)` in asyncio; SIGINT/SIGTERM set `stop`
  and the service shuts down in order (exit code 0).
- `mark_ready(service, **info)`: when SWITCHBOARD_READY_DIR is set, writes
  `<dir>/<service>.ready` as JSON (pid plus e.g. the bound gRPC port). The stack
  supervisor and the tests wait for that file instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

READY_DIR_ENV = "SWITCHBOARD_READY_DIR"


def ready_path(service: str, ready_dir: str | Path | None = None) -> Path | None:
    d = ready_dir or os.environ.get(READY_DIR_ENV)
    return Path(d) / f"{service}.ready" if d else None


def mark_ready(service: str, **info: object) -> None:
    path = ready_path(service)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"service": service, "pid": os.getpid(), **info}))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def run_service(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def _runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(_runner())
