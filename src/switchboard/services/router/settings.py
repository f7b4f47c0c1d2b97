"""Router settings: env prefix SWITCHBOARD_ROUTER_, plus the shared SWITCHBOARD_KAFKA_/SWITCHBOARD_LOG_ blocks."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from switchboard.platform.settings import ServiceSettings, config_path_field


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_ROUTER_", extra="ignore")

    config: Path = config_path_field("SWITCHBOARD_ROUTER_")
    app_id: str = Field(
        "switchboard-router",
        description="Faust app id: the consumer group and the prefix of the table changelog topics",
    )
    data_dir: Path | None = Field(None, description="Faust data directory; default a fresh temp dir")
    deadlines_topic: str = Field("router.deadlines", description="router-internal topic of expired auctions")
    deadline_tick_ms: int = Field(50, ge=5, description="how often expired auctions are looked for")
    web_port: int = Field(0, ge=0, description="Faust web server on 127.0.0.1; 0 disables it")
