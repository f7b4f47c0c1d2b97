"""Run the buyer simulator as a child process (tests, demo): start, wait for its ready file, stop by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from switchboard.platform.lifecycle import READY_DIR_ENV, ready_path


class BuyerSimProcess:
    """`python -m switchboard.buyersim --config <config>`; ports known after `wait_ready()`."""

    def __init__(self, config: Path, ready_dir: Path, log: Path, *extra_args: str) -> None:
        self.log = log
        self.ready_file = ready_path("buyersim", ready_dir)
        assert self.ready_file is not None
        self.ready_file.unlink(missing_ok=True)
        env = {**os.environ, READY_DIR_ENV: str(ready_dir)}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "switchboard.buyersim", "--config", str(config), *extra_args],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        self.http_port = 0
        self.grpc_port = 0

    def wait_ready(self, timeout_s: float = 30.0) -> BuyerSimProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"buyersim exited with {self.proc.returncode}:\n{self.log.read_text(errors='replace')[-3000:]}")
            if self.ready_file.exists():
                info = json.loads(self.ready_file.read_text())
                if info.get("pid") == self.proc.pid:
                    self.http_port, self.grpc_port = info["http_port"], info["grpc_port"]
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"buyersim not ready within {timeout_s}s")

    def http_url(self, buyer_id: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/ping/{buyer_id}"

    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait (SIGKILL after `timeout_s`): the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
