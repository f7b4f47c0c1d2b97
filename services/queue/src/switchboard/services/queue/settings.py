"""Settings of the queue service (env prefix SWITCHBOARD_QUEUE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from switchboard.platform.settings import ServiceSettings, config_path_field


class QueueSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_QUEUE_", extra="ignore")

    config: Path = config_path_field("SWITCHBOARD_QUEUE_")
    group_id: str = Field(
        "queue",
        description="names this queue instance: the key of its state in queue.state, and the consumer group its "
        "input offsets are committed under (for lag monitoring; a restart resumes from the state's offsets)",
    )
    sweep_interval_s: float = Field(
        1.0,
        gt=0,
        description="how often waiting calls are checked against max_wait_s and calls on agents against max_call_duration_s",
    )
    max_call_duration_s: float = Field(
        14400.0,
        gt=0,
        description="a call given to an agent this long ago whose call.ended never came (the edge crashed or lost it) frees "
        "its agent: the call.routed stands as its outcome, a later call.ended is ignored; set it above the longest agent call",
    )
    hung_up_memory_s: float = Field(
        600.0,
        gt=0,
        description="how long a caller's hang-up (call.ended routing_pending) for a call the queue has not seen is remembered, "
        "so that its call.queued, read later, is rejected abandoned; longer than the router takes to hand a call over and "
        "than the queue takes to catch up after a restart",
    )
    snapshot_interval_s: float = Field(
        1.0,
        gt=0,
        description="longest time between two state snapshots (queue.state) while inputs change the state without a "
        "decision (a decision always writes one first); bounds what a restart reads again",
    )
    remember_finished: int = Field(
        100_000, ge=1, description="finished call ids remembered (also across restarts) to ignore a redelivered call.queued"
    )
    abandoned_announcement: str = Field(
        "All of our agents are busy right now. Please call again later. Goodbye.",
        description="played by the edge when a call waited longer than its queue's max_wait_s",
    )
    rejected_announcement: str = Field(
        "We cannot take your call right now. Goodbye.",
        description="played when the queue cannot serve the call (unknown queue, no agents, every agent let it ring, max_attempts)",
    )
    desk_host: str = Field("127.0.0.1", description="the address the AgentDesk gRPC service listens on")
    desk_port: int = Field(
        0, ge=0, le=65535, description="the AgentDesk gRPC port (0: an ephemeral one; the ready file's desk_port says which)"
    )
    # -- who may talk to AgentDesk (platform/grpcsecurity.py, docs/ACD.md "Securing AgentDesk") ----------------
    # The same rule as the gRPC edge's: an offer carries the caller's number and the RPCs change who takes calls.
    desk_tls_cert_file: Path | None = Field(None, description="PEM certificate (chain) of the AgentDesk TLS port; needs the key")
    desk_tls_key_file: Path | None = Field(None, description="PEM private key of desk_tls_cert_file (not encrypted)")
    desk_tls_client_ca_file: Path | None = Field(
        None, description="mTLS: PEM CA bundle; every desk client must present a certificate it signed (health checkers too)"
    )
    desk_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='bearer tokens per desk client (an agent UI, a wallboard), JSON {"client-name": "token"} (16+ '
        "characters each); every RPC but grpc.health.v1.Health needs `authorization: Bearer <token>`",
    )
    desk_tokens_file: Path | None = Field(
        None, description="JSON or YAML mapping client name → token (merged under desk_tokens; mount it from a Secret)"
    )
    desk_insecure: bool = Field(
        False, description="allow plaintext and/or no client credential: local development only (make run and the tests set it)"
    )
    agent_heartbeat_s: float = Field(
        30.0,
        gt=0,
        description="a `login: desk` agent with no open Work stream and no Heartbeat for this long is logged out "
        "(reason heartbeat); after a restart the timers start from the restart",
    )

    @field_validator("desk_tls_cert_file", "desk_tls_key_file", "desk_tls_client_ca_file", "desk_tokens_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty env variable (a ConfigMap entry left blank) means "not set", not the path "".
        return None if isinstance(value, str) and not value.strip() else value
