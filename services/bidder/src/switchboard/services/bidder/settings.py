"""Bidder settings: env prefix SWITCHBOARD_BIDDER_, plus the shared SWITCHBOARD_KAFKA_/SWITCHBOARD_LOG_ blocks.

Per-buyer signing secrets never live in the routing YAML: they come from
SWITCHBOARD_BIDDER_SECRETS (JSON `{"buyer-id": "secret"}`) and/or a JSON or
YAML file named by SWITCHBOARD_BIDDER_SECRETS_FILE. They are SecretStr, so
they never show up in a repr or a log line.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from switchboard.core.engine import DEADLINE_MARGIN_MS
from switchboard.platform.settings import ServiceSettings, config_path_field


class BidderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_BIDDER_", extra="ignore")

    config: Path = config_path_field("SWITCHBOARD_BIDDER_")
    group_id: str = Field("bidder", description="consumer group of the bidders")

    # Ping signatures
    secrets: dict[str, SecretStr] = Field(default_factory=dict, description='JSON {"buyer-id": "secret"}')
    secrets_file: Path | None = Field(None, description="JSON or YAML mapping buyer id → secret (merged under `secrets`)")
    # Answer signatures (issue #4): a buyer with a secret must sign its answers too, or an
    # answer forged on the way could decide who gets a call. Only buyers with a secret are
    # checked; False relaxes the check for all of them (e.g. while buyers roll out signing).
    require_signed_answers: bool = Field(True, description="answers of buyers with a secret must carry a valid signature")
    answer_signature_tolerance_s: float = Field(
        300, gt=0, description="how far an answer's signature timestamp may be from our clock (BUYER_API.md section 5)"
    )

    # Deadlines: answers must reach the router before the ping's deadline, and
    # publishing plus one broker hop takes a little while.
    deadline_margin_ms: int = Field(
        DEADLINE_MARGIN_MS, ge=0, description="stop waiting for buyers this long before the ping's deadline"
    )

    # HTTP client (one pooled httpx.AsyncClient for all buyers)
    http_max_connections: int = Field(500, ge=1)
    http_max_keepalive: int = Field(100, ge=0)
    http_keepalive_expiry_s: float = Field(30.0, gt=0)
    tls_ca_file: Path | None = Field(None, description="extra CA bundle for https buyers (verification is always on)")
    max_response_bytes: int = Field(65_536, ge=256, description="a longer answer is malformed")
    max_bid: str = Field("100000.00", description="a higher bid is malformed (protects against unit mix-ups)")

    # A ping is answered in its own task so a slow auction never holds up the next one.
    max_inflight_pings: int = Field(1000, ge=1)

    def buyer_secrets(self) -> dict[str, SecretStr]:
        """All configured secrets: the file first, then SWITCHBOARD_BIDDER_SECRETS on top."""
        merged: dict[str, SecretStr] = {}
        if self.secrets_file is not None:
            text = self.secrets_file.read_text()
            data = json.loads(text) if self.secrets_file.suffix == ".json" else yaml.safe_load(text)
            if not isinstance(data, dict):
                raise ValueError(f"{self.secrets_file}: expected a mapping buyer id → secret")
            merged.update({str(k): SecretStr(str(v)) for k, v in data.items()})
        merged.update(self.secrets)
        return merged
