"""Process lifecycle shared by every service entrypoint.

- `run_service(main)`: runs `main(stop)` in asyncio; SIGINT/SIGTERM set `stop`
  and the service shuts down in order (exit code 0).
- `service_main(name, settings_factory, run)`: a service's `python -m` entry:
  settings → logging → the ops server (platform.ops: /metrics, /livez, /readyz) →
  `run_service`, known startup errors → exit 2.
- `mark_ready(service, **info)`: the service finished starting: readiness check
  "started" passes, and when SWITCHBOARD_READY_DIR is set it writes
  `<dir>/<service>.ready` as JSON (pid, the ops server's `ops_port`, plus e.g. the
  bound gRPC port). The stack supervisor and the tests wait for that file instead
  of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from switchboard.platform import ops
from switchboard.platform.logging import configure_logging
from switchboard.platform.settings import ServiceSettings

READY_DIR_ENV = "SWITCHBOARD_READY_DIR"

S = TypeVar("S", bound=ServiceSettings)


def ready_path(service: str, ready_dir: str | Path | None = None) -> Path | None:
    d = ready_dir or os.environ.get(READY_DIR_ENV)
    return Path(d) / f"{service}.ready" if d else None


def mark_ready(service: str, **info: object) -> None:
    ops.health().set(ops.STARTED, True)
    path = ready_path(service)
    if path is None:
        return
    running = ops.current()
    if running is not None:
        info = {"ops_host": running.settings.host, "ops_port": running.port, **info}
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


def service_main(
    name: str,
    settings_factory: Callable[[], S],
    run: Callable[[S, asyncio.Event], Awaitable[None]],
    *,
    print_errors: tuple[type[Exception], ...] = (),
    log_errors: Mapping[type[Exception], str] | None = None,
) -> None:
    """The `python -m switchboard.services.<name>` entry: settings → logging → `run(settings, stop)` until SIGTERM.

    Known startup errors end the process with exit code 2 and no traceback:
    one of `print_errors` (e.g. a ConfigError, which names the file, the field
    and the fix) is printed as it is to stderr; one of `log_errors` is logged as
    one error line under the event name it maps to.
    """
    try:
        settings = settings_factory()
    except ValidationError as exc:  # names each variable and the fix (e.g. KafkaSettings' security checks)
        print(f"{name}: invalid settings (environment variables SWITCHBOARD_*):\n{exc}", file=sys.stderr)
        sys.exit(2)
    log = configure_logging(settings.log, service=name)
    logged = tuple(log_errors or {})
    try:
        service_ops = ops.start_ops(settings.ops)
    except OSError as exc:  # e.g. the port is taken
        log.error("ops_listen_failed", host=settings.ops.host, port=settings.ops.port, error=str(exc))
        sys.exit(2)

    async def with_ops(stop: asyncio.Event) -> None:
        # The event-loop heartbeat and the broker probe run next to the service; readiness goes
        # false the moment the stop is asked for, before the service starts shutting down.
        watcher = asyncio.create_task(service_ops.watch(settings.kafka, stop))
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: service_ops.health.shutting_down())
        try:
            await run(settings, stop)
        finally:
            stop.set()
            await watcher

    try:
        run_service(with_ops)
    except print_errors as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    except logged as exc:
        event = next(ev for cls, ev in (log_errors or {}).items() if isinstance(exc, cls))
        log.error(event, error=str(exc))
        sys.exit(2)
