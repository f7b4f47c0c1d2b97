"""Settings of the cti service (env prefix SWITCHBOARD_CTI_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from switchboard.platform.settings import ServiceSettings


class CtiSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_CTI_", extra="ignore")

    group_id: str = Field("cti", description="consumer group of call.routed / call.ended")
    context_capacity: int = Field(100_000, ge=1, description="routed calls whose context is kept for the CALL_ENDED event")
    dedupe_capacity: int = Field(200_000, ge=1, description="source event ids remembered to drop redeliveries")
