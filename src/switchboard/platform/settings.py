"""Settings shared by every service (pydantic-settings).

Each service has its own env prefix (SWITCHBOARD_ROUTER_, SWITCHBOARD_IVR_, ...)
and embeds the shared blocks below, which read their own prefixes:
SWITCHBOARD_KAFKA_* and SWITCHBOARD_LOG_*. Nothing here connects anywhere.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol cluster (Tansu locally, any Kafka in production)."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_KAFKA_", extra="ignore")

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
    security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL")
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(None, repr=False)

    def client_kwargs(self) -> dict:
        kw: dict = {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kw


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_LOG_", extra="ignore")

    level: str = "INFO"
    json_format: bool = Field(False, validation_alias=AliasChoices("SWITCHBOARD_LOG_JSON", "json_format"))


def config_path_field(service_prefix: str) -> Field:  # type: ignore[valid-type]
    """The routing configuration path: SWITCHBOARD_<SERVICE>_CONFIG or the shared SWITCHBOARD_CONFIG."""
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
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port on 127.0.0.1; 0 disables")
