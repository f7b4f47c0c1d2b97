"""Settings of the ivr service (env prefix SWITCHBOARD_IVR_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from switchboard.platform.settings import ServiceSettings, config_path_field


class IvrSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_IVR_", extra="ignore")

    config: Path = config_path_field("SWITCHBOARD_IVR_")
    grpc_host: str = Field("127.0.0.1", description="address the CallControl server binds")
    grpc_port: int = Field(0, ge=0, le=65535, description="0: an ephemeral port (reported in the ready file)")
    await_timeout_ms: int = Field(10_000, gt=0, description="AwaitRouting wait when the request gives 0")
    max_await_timeout_ms: int = Field(60_000, gt=0, description="upper bound for a requested AwaitRouting wait")
    call_ttl_s: int = Field(4 * 3600, gt=0, description="forget calls never reported as ended after this long")
    ended_memory: int = Field(10_000, gt=0, description="ended calls remembered so a retried final ReportOutcome is answered OK")
    shutdown_grace_s: float = Field(5.0, ge=0, description="in-flight RPCs get this long on SIGTERM")
    unknown_number_announcement: str = Field(
        "The number you have dialed is not in service. Goodbye.",
        description="played by the edge when the dialed number belongs to no campaign",
    )
    blocked_announcement: str = Field(
        "We are unable to take your call. Goodbye.",
        description="played by the edge when the caller is on a blocklist",
    )
    invalid_number_announcement: str = Field(
        "We are unable to take calls from this number. Goodbye.",
        description="played by the edge when the caller number is invalid and the campaign does not allow it",
    )
    duplicate_announcement: str = Field(
        "Our records show you called recently. We will be in touch. Goodbye.",
        description="played by the edge when the caller called the campaign within its duplicate_window",
    )
    disqualified_announcement: str = Field(
        "Thank you for calling. We are unable to help you today. Goodbye.",
        description="played when the IVR flow ends disqualified and its end node has no prompt",
    )
