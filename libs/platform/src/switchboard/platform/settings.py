"""Settings shared by every service (pydantic-settings).

Each service has its own env prefix (SWITCHBOARD_ROUTER_, SWITCHBOARD_IVR_, ...)
and embeds the shared blocks below, which read their own prefixes:
SWITCHBOARD_KAFKA_*, SWITCHBOARD_LOG_* and SWITCHBOARD_OPS_*. Nothing here connects anywhere.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"


KAFKA_ENV_PREFIX = "SWITCHBOARD_KAFKA_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms that need nothing but a user name and a password (aiokafka and Faust both speak them).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _env(field: str) -> str:
    return f"{KAFKA_ENV_PREFIX}{field.upper()}"


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol cluster (Tansu locally, any Kafka in production).

    Security (README, "Secured Kafka (TLS, SASL)"): `security_protocol` SSL or SASL_SSL
    encrypts with TLS, verifying the brokers against `ssl_cafile` (or the system's CAs when
    unset), optionally presenting a client certificate (`ssl_certfile` + `ssl_keyfile`);
    SASL_PLAINTEXT or SASL_SSL log in with `sasl_mechanism`, `sasl_username`, `sasl_password`.
    Every client takes these from `client_kwargs()` (aiokafka) or `faust_credentials()` (the
    router's Faust app), so all of them connect the same way.
    """

    # hide_input_in_errors: a validation error must never print the SASL password it was given.
    model_config = SettingsConfigDict(env_prefix=KAFKA_ENV_PREFIX, extra="ignore", hide_input_in_errors=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port]")
    partitions: int = Field(4, ge=1, description="partitions per topic when Switchboard creates topics")
    replication_factor: int = Field(1, ge=1)
    # aiokafka's default (500 ms) costs ~250 ms per hop on Tansu. 5 ms made every idle consumer poll
    # the broker 200 times a second (Tansu ~75-95% of a CPU with no calls at all); 25 ms cut idle CPU
    # and, on 2 cores, gave lower decision latency under load (make bench quick runs: 84 vs 128 ms p50).
    fetch_max_wait_ms: int = Field(25, ge=0, description="longest a fetch waits for records (per consumer hop)")
    linger_ms: int = Field(0, ge=0)
    # Tansu holds a JoinGroup for about half the session timeout (5 s at 10 s) and keeps a killed
    # member until its session expires: keep it short locally (docs/ROUTER.md, crash and restart).
    session_timeout_ms: int = Field(10_000, ge=1000)
    rebalance_timeout_ms: int = Field(6_000, ge=1000)
    heartbeat_interval_ms: int = Field(1_000, ge=100)
    # Below Kafka's defaults (broker message.max.bytes ~1 MiB, producer max_request_size 1 MiB) with room
    # for the record's own overhead, so a record sized to it is never refused for its size.
    max_record_bytes: int = Field(
        900_000,
        ge=10_000,
        le=1_000_000,
        description="largest record Switchboard writes: a dead letter over it leaves out the copied value (the original "
        "stays at its source offset), a queue snapshot over it is split into chunks; keep it below the broker's "
        "message.max.bytes (and the topics' max.message.bytes)",
    )
    retry_max_s: float = Field(
        5.0,
        gt=0,
        description="longest wait between two attempts of a write the broker refused or timed out (dead letters, cti "
        "events): attempts go on, backing off from 50 ms to this, until one succeeds or the service is stopped",
    )
    security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL")
    ssl_cafile: Path | None = Field(
        None, description="PEM CA bundle the brokers' certificates are checked against; unset: the system CAs"
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (chain) for brokers that require one; needs ssl_keyfile"
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile (not encrypted)")
    ssl_check_hostname: bool = Field(True, description="check that a broker's certificate names the host it was reached by")
    sasl_mechanism: str | None = Field(None, description="PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512")
    sasl_username: str | None = None
    sasl_password: str | None = Field(None, repr=False)

    # Built once from the files above when the settings are validated: every client shares it.
    _ssl_context: ssl.SSLContext | None = PrivateAttr(None)

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_mechanism", "sasl_username", "sasl_password", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty env variable (e.g. a ConfigMap entry left blank) means "not set", not the path "".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        problems = self._security_problems()
        if problems:
            raise ValueError("Kafka security settings: " + "; ".join(problems))
        if self.uses_ssl:
            self._ssl_context = self._build_ssl_context()
        return self

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client uses (None unless security_protocol is SSL or SASL_SSL)."""
        return self._ssl_context

    def _security_problems(self) -> list[str]:
        protocol = _env("security_protocol")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            return [f"{protocol}={self.security_protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"]
        problems: list[str] = []
        ssl_files = {f: getattr(self, f) for f in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, f) is not None}
        if ssl_files and not self.uses_ssl:
            given = ", ".join(_env(f) for f in ssl_files)
            to = "SASL_SSL" if self.uses_sasl else "SSL"
            problems.append(
                f"{given} set but {protocol}={self.security_protocol} does not use TLS: set {protocol}={to}, or unset them"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            has, lacks = ("ssl_certfile", "ssl_keyfile") if self.ssl_keyfile is None else ("ssl_keyfile", "ssl_certfile")
            problems.append(
                f"{_env(has)} set without {_env(lacks)}: a client certificate needs both its certificate and its private key (PEM files)"
            )
        for f, path in ssl_files.items():
            if not path.is_file():
                problems.append(f"{_env(f)}={path}: no such file (mount it, or fix the path)")
        sasl_given = [f for f in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, f) is not None]
        if self.uses_sasl:
            if self.sasl_mechanism is None:
                problems.append(
                    f"{protocol}={self.security_protocol} needs {_env('sasl_mechanism')}: one of {', '.join(SASL_MECHANISMS)}"
                )
            elif self.sasl_mechanism not in SASL_MECHANISMS:
                problems.append(
                    f"{_env('sasl_mechanism')}={self.sasl_mechanism!r} is not supported: use one of {', '.join(SASL_MECHANISMS)}"
                )
            missing = [_env(f) for f in ("sasl_username", "sasl_password") if getattr(self, f) is None]
            if missing:
                problems.append(f"{protocol}={self.security_protocol} needs {' and '.join(missing)} (the SASL login)")
        elif sasl_given:
            given = ", ".join(_env(f) for f in sasl_given)
            to = "SASL_SSL" if self.uses_ssl else "SASL_SSL (or SASL_PLAINTEXT)"
            problems.append(
                f"{given} set but {protocol}={self.security_protocol} does not log in: set {protocol}={to}, or unset them"
            )
        return problems

    def _build_ssl_context(self) -> ssl.SSLContext:
        from aiokafka.helpers import create_ssl_context  # only when TLS is asked for

        try:
            context = create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)
        except (ssl.SSLError, OSError) as exc:
            # The file exists (checked above) but is not what it should be: say which variables to look at.
            given = ", ".join(
                f"{_env(f)}={getattr(self, f)}" for f in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, f)
            )
            raise ValueError(
                f"Kafka security settings: cannot build the TLS context from {given or 'the system CAs'}: {exc} "
                "(CA and certificate must be PEM certificates, the key the PEM private key of the certificate, not encrypted)"
            ) from exc
        if not self.ssl_check_hostname:
            context.check_hostname = False  # still verifies the chain against the CA, only not the name
        return context

    def client_kwargs(self) -> dict:
        """Connection and security arguments for any aiokafka client (producer, consumer, admin)."""
        kw: dict = {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self.security_protocol}
        if self.uses_ssl:
            kw["ssl_context"] = self._ssl_context
        if self.uses_sasl:
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kw

    def faust_credentials(self) -> CredentialsT | None:
        """The same security as `client_kwargs()` as a Faust `broker_credentials` (None for PLAINTEXT).

        Faust turns it into the same aiokafka arguments for every client it builds
        (producer, worker and client consumers, topic creation).
        """
        import faust  # here, not at module level: only the router uses Faust, and importing it is slow

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                ssl_context=self._ssl_context,  # set: SASL_SSL; None: SASL_PLAINTEXT
                mechanism=self.sasl_mechanism,
            )
        if self.uses_ssl:
            return faust.SSLCredentials(self._ssl_context)
        return None


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_LOG_", extra="ignore")

    level: str = "INFO"
    json_format: bool = Field(False, validation_alias=AliasChoices("SWITCHBOARD_LOG_JSON", "json_format"))


class OpsSettings(BaseSettings):
    """The ops HTTP server of every service: /metrics, /livez, /readyz (docs/OPERATIONS.md)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_OPS_", extra="ignore")

    # Loopback by default: a laptop run exposes nothing; the manifests set 0.0.0.0 so Prometheus can scrape.
    host: str = Field("127.0.0.1", description="address the ops server listens on")
    port: int = Field(0, ge=0, le=65535, description="ops server port; 0: an ephemeral port (written to the ready file)")
    stall_after_s: float = Field(
        30.0, gt=0, description="/livez fails when the event loop or a consumer loop made no progress for this long"
    )
    broker_check_s: float = Field(
        2.0, gt=0, description="how often readiness asks the broker for metadata (also the answer's timeout)"
    )


def config_path_field(service_prefix: str) -> Any:
    """The routing configuration path: SWITCHBOARD_<SERVICE>_CONFIG or the shared SWITCHBOARD_CONFIG.

    Any, as pydantic types Field() itself: the FieldInfo is the default of a `config: Path` field.
    """
    return Field(
        DEMO_CONFIG,
        validation_alias=AliasChoices(f"{service_prefix}CONFIG", "SWITCHBOARD_CONFIG", "config"),
        description="YAML file or directory of files (ROUTING.md)",
    )


class ServiceSettings(BaseSettings):
    """Base for a service's settings: subclasses set env_prefix and add their own fields."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
