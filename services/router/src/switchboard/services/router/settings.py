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
        description="Faust app id: the consumer group and the prefix of the table changelog and ledger topics",
    )
    data_dir: Path | None = Field(None, description="Faust data directory; default a fresh temp dir")
    deadlines_topic: str = Field("router.deadlines", description="router-internal topic of expired auctions")
    deadline_tick_ms: int = Field(50, ge=5, description="how often expired auctions are looked for")
    # A worker that takes calls over (another stopped) finds their deadlines passed while bids given in
    # time still wait unread in bid.received (docs/ROUTER.md, "Late deadlines").
    late_deadline_ms: int = Field(
        1000, ge=0, description="an auction deadline found this late waits for bid.received to be read up to where it was"
    )
    late_deadline_hold_ms: int = Field(
        10_000, ge=0, description="the longest a late deadline waits for that before the auction concludes anyway"
    )
    # Housekeeping (docs/ROUTER.md, "Calls whose end never comes" and "How long finished calls are remembered").
    max_call_duration_s: float = Field(
        4 * 3600,
        gt=0,
        description="an open call routed this long ago is taken as lost (its call.ended never came) and released "
        "without a sale: the buyer's concurrency slot and reserved spend are freed, nothing is billed",
    )
    finished_retention_s: float = Field(
        24 * 3600,
        gt=0,
        description="how long a finished call id is remembered to drop a redelivered ivr.completed; an ivr.completed "
        "older than this is ignored, so forgetting can never route a call twice",
    )
    sweep_interval_s: float = Field(
        60.0, gt=0, description="how often each worker looks for stale open calls and for finished calls to forget"
    )
    web_port: int = Field(0, ge=0, description="Faust web server on 127.0.0.1; 0 disables it")
    # The buyer ledger's topics belong to one router deployment (one app id): two deployments on one
    # cluster must never read each other's reservations or views, so the default names carry the app id.
    ledger_topic: str = Field("", description="reservations/releases keyed by buyer id; default '<app_id>.ledger'")
    replies_topic: str = Field("", description="ledger answers keyed by call id; default '<app_id>.replies'")
    view_topic: str = Field("", description="latest buyer/tier state per key, read by every worker; default '<app_id>.view'")

    def internal_topic(self, kind: str) -> str:
        """The name of the router-internal topic `kind` ("ledger", "replies", "view")."""
        explicit = {"ledger": self.ledger_topic, "replies": self.replies_topic, "view": self.view_topic}[kind]
        return explicit or f"{self.app_id}.{kind}"
