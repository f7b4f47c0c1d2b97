"""The real Prometheus server (Debian package `prometheus`) for tests: scrapes given ops ports, answers queries.

Started with a generated config (one job per service, scrape_interval 1s), its TSDB in a temp
dir, its web API on 127.0.0.1 at a free port; stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from switchboard.platform.broker import free_port

BINARY_CANDIDATES = ("prometheus", "/usr/bin/prometheus")


def find_prometheus() -> str | None:
    for candidate in BINARY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Prometheus:
    def __init__(self, binary: str, workdir: Path, targets: Mapping[str, int]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = dict(targets)  # job (service name) → its ops port on 127.0.0.1
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def config(self) -> str:
        jobs = [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for name, port in sorted(self.targets.items())
        ]
        # JSON is YAML: no YAML writer needed for the config.
        return json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs})

    def start(self, timeout_s: float = 60.0) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config())
        self.port = free_port()
        log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 — the child holds it
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"prometheus not ready within {timeout_s}s:\n{self.logs()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def query(self, expr: str) -> float | None:
        """The instant query's value (the first sample of a vector, or a scalar), None when it has none."""
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=5) as r:
            answer = json.loads(r.read())
        assert answer["status"] == "success", answer
        data = answer["data"]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        if data["resultType"] == "vector" and data["result"]:
            return float(data["result"][0]["value"][1])
        return None

    def wait_for(self, expr: str, cond, timeout_s: float = 60.0, interval_s: float = 0.5) -> float:
        """Query `expr` until `cond(value)` holds; return the value (AssertionError with the last one at the deadline)."""
        deadline = time.monotonic() + timeout_s
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.query(expr)
            if last is not None and cond(last):
                return last
            time.sleep(interval_s)
        raise AssertionError(f"{expr}: last value {last} within {timeout_s}s; targets {self.targets}\n{self.logs()}")

    def up(self) -> dict[str, float]:
        """job → its `up` value (1: the last scrape worked)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/query?query=up", timeout=5) as r:
            result = json.loads(r.read())["data"]["result"]
        return {s["metric"]["job"]: float(s["value"][1]) for s in result}

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
