"""Settings of the analytics sink (env prefix SWITCHBOARD_ANALYTICS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from switchboard.analytics.client import default_dsn
from switchboard.platform.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_ANALYTICS_", extra="ignore")

    dsn: str = Field(
        default_factory=default_dsn,
        description=(
            "where events go: chdb:///abs/dir (embedded chDB; default <current dir>/var/chdb, "
            "resolved when the service starts), chdb://memory, or http(s)://user:pass@host:port/db"
        ),
    )
    database: str | None = Field(None, description="database for the tables; default: the DSN's, else 'switchboard'")
    group_id: str = Field("analytics", description="Kafka consumer group")
    batch_rows: int = Field(1000, ge=1, description="flush when this many events are pending")
    flush_interval_ms: int = Field(200, ge=1, description="flush pending events at least this often")
    retry_max_ms: int = Field(5000, ge=10, description="cap of the backoff between failed inserts")
