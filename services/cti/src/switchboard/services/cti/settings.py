"""Settings of the cti service (env prefix SWITCHBOARD_CTI_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from switchboard.core.webhooks import BACKOFF_BASE_S, BACKOFF_MAX_S
from switchboard.platform.settings import ServiceSettings, config_path_field


class CtiSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_CTI_", extra="ignore")

    group_id: str = Field("cti", description="consumer group of call.routed / call.ended")
    context_capacity: int = Field(100_000, ge=1, description="routed calls whose context is kept for the CALL_ENDED event")
    dedupe_capacity: int = Field(200_000, ge=1, description="source event ids remembered to drop redeliveries")
    # Caller history (docs/CTI.md "Caller history"): kept in memory, written to cti.history, read back at start.
    history_retention_days: float = Field(
        90.0, gt=0, description="a caller's call leaves the history this many days after it started"
    )
    history_max_calls: int = Field(20, ge=1, le=1000, description="calls kept per caller (the newest)")
    history_sweep_interval_s: float = Field(
        3600.0, gt=0, description="how often histories of callers who stopped calling are checked against the retention"
    )
    # The routing configuration: cti reads its crm_endpoints (docs/CONFIG.md#crm_endpoints, "Delivery").
    config: Path = config_path_field("SWITCHBOARD_CTI_")
    webhook_max_in_flight: int = Field(32, ge=1, description="HTTP requests at once per CRM endpoint")
    webhook_max_pending: int = Field(
        10_000, ge=1, description="events read and not yet delivered per CRM endpoint; reading pauses at this many"
    )
    webhook_dedupe_capacity: int = Field(
        20_000, ge=1, description="event ids delivered per CRM endpoint remembered, so a repeat on cti.events is not sent again"
    )
    webhook_backoff_base_s: float = Field(
        BACKOFF_BASE_S, gt=0, description="first retry waits up to this (full jitter), doubling per attempt"
    )
    webhook_backoff_max_s: float = Field(BACKOFF_MAX_S, gt=0, description="longest wait between two attempts of a delivery")
    # The HTTP API for CRMs (api.py; docs/CTI.md "Dispositions"): off unless enabled, then only with tokens.
    api_enabled: bool = Field(False, description="serve POST /v1/calls/{id}/disposition (CRM write-back)")
    api_host: str = Field("127.0.0.1", description="address the API binds")
    api_port: int = Field(0, ge=0, le=65535, description="0: an ephemeral port (the ready file's api_port)")
    api_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='bearer tokens per API client, JSON {"crm-name": "token"} (16+ characters each); the name is the '
        "`source` of its write-backs",
    )
    api_tokens_file: Path | None = Field(
        None, description="JSON or YAML mapping client name → token (merged under api_tokens; mount it from a Secret)"
    )

    @field_validator("api_tokens_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
