"""The whole stack as local processes: embedded broker + every service + analytics sink.

Used by `switchboard run` (make run) and the end-to-end tests. Each service is a
real process (`python -m switchboard.services.<name>`) configured only through
its environment, exactly as in a deployment; readiness is a file each service
writes (platform.lifecycle.mark_ready), so nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.lifecycle import READY_DIR_ENV, ready_path

# Start order: consumers of a topic before its producers, the edge (ivr) last.
SERVICES: tuple[str, ...] = ("analytics", "cti", "queue", "bidder", "router", "ivr")


class StackError(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    info: dict = field(default_factory=dict)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Stack:
    workdir: Path
    config: Path
    dsn: str | None = None  # default: embedded chDB under workdir
    partitions: int = 4
    services: tuple[str, ...] = SERVICES
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = field(default=None, init=False)
    procs: dict[str, ServiceProcess] = field(default_factory=dict, init=False)

    @property
    def ready_dir(self) -> Path:
        return self.workdir / "ready"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def analytics_dsn(self) -> str:
        return self.dsn or f"chdb://{(self.workdir / 'chdb').resolve()}"

    @property
    def bootstrap_servers(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    @property
    def ivr_target(self) -> str:
        return f"127.0.0.1:{self.procs['ivr'].info['grpc_port']}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SWITCHBOARD_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "SWITCHBOARD_KAFKA_PARTITIONS": str(self.partitions),
                "SWITCHBOARD_CONFIG": str(Path(self.config).resolve()),
                "SWITCHBOARD_ANALYTICS_DSN": self.analytics_dsn,
                "SWITCHBOARD_ROUTER_DATA_DIR": str((self.workdir / "router").resolve()),
                READY_DIR_ENV: str(self.ready_dir.resolve()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    async def start(self, timeout_s: float = 90.0, progress=None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ready_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.ready_dir.glob("*.ready"):
            stale.unlink()
        self.broker = EmbeddedBroker(partitions=self.partitions, log_path=self.log_dir / "broker.log")
        try:
            if progress:
                progress("broker")
            await self.broker.start()
            env = self.env()
            for name in self.services:
                log_path = self.log_dir / f"{name}.log"
                out = open(log_path, "ab")  # noqa: SIM115 - the child owns it
                proc = subprocess.Popen(
                    [sys.executable, "-m", f"switchboard.services.{name}"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
                    cwd=self.workdir,
                )
                out.close()
                self.procs[name] = ServiceProcess(name, proc, log_path)
            for name in self.services:
                if progress:
                    progress(name)
                self.procs[name].info = await self._wait_ready(name, timeout_s)
        except BaseException:
            self.stop()
            raise

    async def _wait_ready(self, name: str, timeout_s: float) -> dict:
        sp = self.procs[name]
        path = ready_path(name, self.ready_dir)
        assert path is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sp.process.poll() is not None:
                raise StackError(f"service {name} exited with {sp.process.returncode} before it was ready:\n{sp.log_tail()}")
            if path.exists():
                return json.loads(path.read_text())
            await asyncio.sleep(0.05)
        raise StackError(f"service {name} was not ready within {timeout_s}s:\n{sp.log_tail()}")

    def dead_services(self) -> list[str]:
        return [n for n, sp in self.procs.items() if sp.process.poll() is not None]

    def stop(self, timeout_s: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every service (edge first, sink last so it flushes everything), then the broker."""
        codes: dict[str, int | None] = {}
        for name in reversed(list(self.procs)):
            sp = self.procs[name]
            if sp.process.poll() is None:
                sp.process.send_signal(signal.SIGTERM)
            try:
                codes[name] = sp.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(sp.process.pid, signal.SIGKILL)
                codes[name] = sp.process.wait()
        self.procs.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        return codes
