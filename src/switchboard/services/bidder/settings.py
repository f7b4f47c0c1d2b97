"""Bidder settings: env prefix SWITCHBOARD_BIDDER_, plus the shared SWITCHBOARD_KAFKA_/SWITCHBOARD_LOG_ blocks."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from switchboard.platform.settings import ServiceSettings, config_path_field


class BidderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_BIDDER_", extra="ignore")

    config: Path = config_path_field("SWITCHBOARD_BIDDER_")
    group_id: str = Field("bidder", description="consumer group of the bidders")
