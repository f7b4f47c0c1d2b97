"""The whole stack as local processes: embedded broker + every service + analytics sink.

Used by `switchboard run` (make run) and the end-to-end tests. Each service is a
real process (`python -m switchboard.services.<name>`) configured only through
its environment, exactly as in a deployment; readiness is a file each service
writes (platform.lifecycle.mark_ready), so nothing here sleeps for a fixed time.

When the routing config has RTB buyers, the buyer simulator
(`python -m switchboard.buyersim`, default YAML examples/buyers.yaml) starts
first on free ports; its addresses reach every service, and the config loading
of the caller, as SWITCHBOARD_BUYERSIM_HTTP / SWITCHBOARD_BUYERSIM_GRPC, which
the demo config interpolates into its RTB urls (`${SWITCHBOARD_BUYERSIM_HTTP:-...}`).
The simulated buyers' signing secrets go to the bidder as SWITCHBOARD_BIDDER_SECRETS.

Likewise the demo CRM (`python -m switchboard.demo.crm`): when a `crm_endpoints` url points at
`${SWITCHBOARD_DEMO_CRM:-...}`, it starts before the services on a free port, with a fresh
`whsec_` secret per stack; the services get its address as SWITCHBOARD_DEMO_CRM and cti the
secret in every variable those endpoints name as `secret_env`.
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
from urllib.parse import urlsplit

from switchboard.demo.crm import DEMO_CRM_ENV, DEMO_CRM_SECRET_ENV, new_secret
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.lifecycle import READY_DIR_ENV, ready_path
from switchboard.platform.settings import DEMO_CONFIG, KafkaSettings

# Start order: consumers of a topic before its producers, the edge (ivr) last.
SERVICES: tuple[str, ...] = ("analytics", "cti", "queue", "bidder", "router", "ivr")

BUYERSIM = "buyersim"
DEMO_BUYERS = DEMO_CONFIG.parent / "buyers.yaml"
BUYERSIM_HTTP_ENV = "SWITCHBOARD_BUYERSIM_HTTP"
BUYERSIM_GRPC_ENV = "SWITCHBOARD_BUYERSIM_GRPC"
BIDDER_SECRETS_ENV = "SWITCHBOARD_BIDDER_SECRETS"
DEMO_CRM = "crm"
# SWITCHBOARD_DEMO_CRM while looking for the endpoints that point at the demo CRM: a host no real URL has.
_DEMO_CRM_PROBE = "switchboard-demo-crm.invalid:1"


def has_rtb_buyers(config: Path) -> bool:
    """Whether the routing config names any RTB buyer (read with the defaults of its `${...}` variables)."""
    from switchboard.core.config import ConfigError
    from switchboard.platform.configfile import load_config

    try:
        cfg = load_config(config)
    except ConfigError:
        return False  # the services report the problems; nothing to simulate
    return any(b.bid.type == "rtb" for b in cfg.buyers)


def demo_crm_secret_envs(config: Path) -> tuple[str, ...]:
    """The `secret_env` of every crm endpoint whose url points at the demo CRM (`${SWITCHBOARD_DEMO_CRM...}`)."""
    from switchboard.core.config import ConfigError
    from switchboard.platform.configfile import load_config

    try:
        cfg = load_config(config, env={**os.environ, DEMO_CRM_ENV: _DEMO_CRM_PROBE})
    except ConfigError:
        return ()  # the services report the problems
    names = [e.secret_env for e in cfg.crm_endpoints if urlsplit(e.url).netloc == _DEMO_CRM_PROBE]
    return tuple(dict.fromkeys(names))


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
    # Buyer simulator: None plays examples/buyers.yaml when the config has RTB buyers; False never starts it.
    buyers: Path | bool | None = None
    broker: EmbeddedBroker | None = field(default=None, init=False)
    procs: dict[str, ServiceProcess] = field(default_factory=dict, init=False)
    # The demo CRM's signing secret: one per stack, so a run never verifies with another run's key.
    crm_secret: str = field(default_factory=new_secret, init=False, repr=False)

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

    def kafka_settings(self) -> KafkaSettings:
        """How clients reach the stack's broker (started)."""
        assert self.broker is not None
        return self.broker.kafka_settings()

    @property
    def ivr_target(self) -> str:
        return f"127.0.0.1:{self.procs['ivr'].info['grpc_port']}"

    @property
    def desk_target(self) -> str:
        """The queue service's AgentDesk gRPC address (its ready file's desk_port)."""
        return f"127.0.0.1:{self.procs['queue'].info['desk_port']}"

    @property
    def buyersim_http(self) -> str | None:
        """`127.0.0.1:<port>` of the buyer simulator's HTTP server, None when it is not running."""
        sp = self.procs.get(BUYERSIM)
        return f"127.0.0.1:{sp.info['http_port']}" if sp and sp.info else None

    @property
    def buyersim_grpc(self) -> str | None:
        sp = self.procs.get(BUYERSIM)
        return f"127.0.0.1:{sp.info['grpc_port']}" if sp and sp.info else None

    @property
    def crm_http(self) -> str | None:
        """`127.0.0.1:<port>` of the demo CRM receiver, None when it is not running."""
        sp = self.procs.get(DEMO_CRM)
        return f"127.0.0.1:{sp.info['http_port']}" if sp and sp.info else None

    def buyers_config(self) -> Path | None:
        """The simulator YAML this stack plays, or None when no simulator is needed."""
        if self.buyers is False:
            return None
        if isinstance(self.buyers, Path):
            return self.buyers
        return DEMO_BUYERS if has_rtb_buyers(Path(self.config)) else None

    def config_env(self) -> dict[str, str]:
        """os.environ plus the variables the routing config interpolates (pass to load_config(env=...))."""
        env = dict(os.environ)
        if self.buyersim_http:
            env[BUYERSIM_HTTP_ENV] = self.buyersim_http
            env[BUYERSIM_GRPC_ENV] = self.buyersim_grpc or ""
        if self.crm_http:
            env[DEMO_CRM_ENV] = self.crm_http
        env.update(self.extra_env)
        return env

    def _buyer_secrets(self, base: dict[str, str]) -> str | None:
        """SWITCHBOARD_BIDDER_SECRETS with the simulated buyers' secrets added (explicit settings win)."""
        path = self.buyers_config()
        if path is None or BUYERSIM not in self.procs:
            return None
        from switchboard.buyersim.config import load_sim_config

        secrets = {b.id: b.secret for b in load_sim_config(path).buyers if b.secret is not None}
        if not secrets:
            return None
        given = base.get(BIDDER_SECRETS_ENV)
        if given:
            secrets.update(json.loads(given))
        return json.dumps(secrets)

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
        if self.buyersim_http:
            env[BUYERSIM_HTTP_ENV] = self.buyersim_http
            env[BUYERSIM_GRPC_ENV] = self.buyersim_grpc or ""
        if self.crm_http:
            env[DEMO_CRM_ENV] = self.crm_http
        # A local stack on loopback: the gRPC edge and AgentDesk in plaintext without client credentials (the demo
        # driver, its agents and the bench talk to them so), unless the caller's environment says otherwise
        # (docs/IVR.md, "Securing the gRPC edge"; docs/ACD.md, "Securing AgentDesk").
        env.setdefault("SWITCHBOARD_IVR_GRPC_INSECURE", "true")
        env.setdefault("SWITCHBOARD_QUEUE_DESK_INSECURE", "true")
        env.update(self.extra_env)
        if self.crm_http:
            for name in demo_crm_secret_envs(Path(self.config)):
                env[name] = self.crm_secret  # cti signs with the key the demo CRM verifies with (set last: it must match)
        secrets = self._buyer_secrets(env)
        if secrets is not None:
            env[BIDDER_SECRETS_ENV] = secrets
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        out = open(log_path, "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            cwd=self.workdir,
        )
        out.close()
        self.procs[name] = ServiceProcess(name, proc, log_path)

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
            buyers = self.buyers_config()
            if buyers is not None:
                # Before the services: their config interpolates the simulator's ports.
                if progress:
                    progress(BUYERSIM)
                config = str(Path(buyers).resolve())  # noqa: ASYNC240 — one path, once, at start-up
                self._spawn(BUYERSIM, ["switchboard.buyersim", "--config", config], self.env())
                self.procs[BUYERSIM].info = await self._wait_ready(BUYERSIM, timeout_s)
            if demo_crm_secret_envs(Path(self.config)):
                # Before the services too: cti's endpoint url interpolates the receiver's port.
                if progress:
                    progress(DEMO_CRM)
                crm_env = {**self.env(), DEMO_CRM_SECRET_ENV: self.crm_secret}
                self._spawn(DEMO_CRM, ["switchboard.demo.crm", "--secret-env", DEMO_CRM_SECRET_ENV], crm_env)
                self.procs[DEMO_CRM].info = await self._wait_ready(DEMO_CRM, timeout_s)
            env = self.env()
            for name in self.services:
                self._spawn(name, [f"switchboard.services.{name}"], env)
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

    def ops_urls(self) -> dict[str, str]:
        """Service → base URL of its ops server (`/metrics`, `/livez`, `/readyz`), from its ready file's ops_port."""
        urls: dict[str, str] = {}
        for name, sp in self.procs.items():
            if "ops_port" in sp.info:
                host = sp.info.get("ops_host", "127.0.0.1")
                host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # listening everywhere: reach it locally
                urls[name] = f"http://{host}:{sp.info['ops_port']}"
        return urls

    def dead_services(self) -> list[str]:
        return [n for n, sp in self.procs.items() if sp.process.poll() is not None]

    def stop(self, timeout_s: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every service (edge first, sink last so it flushes everything), the demo CRM and the buyer
        simulator, then the broker."""
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
