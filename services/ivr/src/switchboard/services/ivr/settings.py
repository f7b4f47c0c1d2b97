"""Settings of the ivr service (env prefix SWITCHBOARD_IVR_)."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
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
    decision_reread_max_age_s: float = Field(
        3600,
        gt=0,
        description="at start, call.routed / call.rejected are read again for live calls (ivr.calls) whose decision was "
        "pending for at most this long (a queued call can wait long for an agent)",
    )
    ended_memory: int = Field(10_000, gt=0, description="ended calls remembered so a retried final ReportOutcome is answered OK")
    shutdown_grace_s: float = Field(5.0, ge=0, description="in-flight RPCs get this long on SIGTERM")
    instance_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="this instance's stable name (a StatefulSet pod name; default the host name): the instance that "
        "accepted a callback places it (WatchCallbacks), also after its restart",
    )

    # -- who may talk to the gRPC edge (security.py, docs/IVR.md "Securing the gRPC edge") ------------------
    grpc_tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) of the CallControl TLS port; needs the key"
    )
    grpc_tls_key_file: Path | None = Field(None, description="PEM private key of grpc_tls_cert_file (not encrypted)")
    grpc_tls_client_ca_file: Path | None = Field(
        None, description="mTLS: PEM CA bundle; every client must present a certificate it signed (health checkers too)"
    )
    grpc_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='bearer tokens per edge client, JSON {"client-name": "token"} (16+ characters each); '
        "every RPC but grpc.health.v1.Health needs `authorization: Bearer <token>`",
    )
    grpc_tokens_file: Path | None = Field(
        None, description="JSON or YAML mapping client name → token (merged under grpc_tokens; mount it from a Secret)"
    )
    grpc_insecure: bool = Field(
        False, description="allow plaintext and/or no client credential: local development only (make run and the tests set it)"
    )
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

    # -- the TwiML webhook (docs/TWIML.md) ---------------------------------------------------------------
    twiml_enabled: bool = Field(
        False, description="serve the TwiML voice webhook (Twilio-style CPaaS) next to gRPC CallControl; off by default"
    )
    twiml_host: str = Field("127.0.0.1", description="address the TwiML webhook binds (put a TLS proxy or tunnel in front)")
    twiml_port: int = Field(0, ge=0, le=65535, description="0: an ephemeral port (reported in the ready file as twiml_port)")
    twiml_auth_token: SecretStr | None = Field(
        None, description="the CPaaS account's auth token: the key of X-Twilio-Signature (required while validation is on)"
    )
    twiml_validate_signature: bool = Field(
        True, description="refuse (403) webhook requests without a valid X-Twilio-Signature; turn off only for local trials"
    )
    twiml_public_base_url: str = Field(
        "",
        description="the URL the CPaaS reaches this server's / at (https://host[/prefix]); signatures are checked against it "
        "and callback URLs built from it. Empty: the scheme and Host of each request",
    )
    twiml_route_wait_s: float = Field(
        5.0,
        gt=0,
        le=10,
        description="how long one webhook request waits for a routing decision before answering <Redirect> to ask again",
    )
    twiml_hold_message: str = Field("Please hold while we connect your call.", description="said while routing is pending")
    twiml_hold_repeat_s: float = Field(30.0, gt=0, description="the hold message is said again after about this long on hold")
    twiml_dial_timeout_s: int = Field(30, ge=5, le=600, description="<Dial timeout>: how long an offer rings before no-answer")
    twiml_gather_timeout_s: int = Field(
        5, ge=1, le=60, description="<Gather timeout>: silence before the prompt counts as unanswered"
    )
    twiml_dial_grace_s: float = Field(
        3.0,
        ge=0,
        le=10,
        description="a hang-up status callback during a <Dial> waits this long for the dial action to report the offer",
    )
    twiml_languages: dict[str, str] = Field(
        default_factory=lambda: {"en": "en-US", "es": "es-MX"},
        description="flow language → <Say>/<Gather> language tag; tags with a region (en-GB) are used as they are",
    )
    twiml_voice: str = Field("", description="<Say voice> (e.g. Polly.Joanna); empty: the CPaaS default")
    twiml_hold_url: str = Field(
        "",
        description="waiting in an ACD queue: <Play> this audio (music on hold) between announcements; empty: <Pause>",
    )
    twiml_hold_pause_s: int = Field(
        10, ge=1, le=600, description="waiting in an ACD queue without twiml_hold_url: <Pause length> between polls"
    )
    # -- outbound callbacks of TwiML calls through the CPaaS REST API (outbound.py, docs/TWIML.md) ----------
    twilio_api_base_url: str = Field(
        "https://api.twilio.com",
        description="the CPaaS REST API the ivr asks to place callbacks (Calls create); another URL for a compatible "
        "CPaaS or a test double",
    )
    twilio_account_sid: str = Field(
        "", description="the CPaaS account (Basic auth user, the path's Accounts/<sid>); empty: TwiML callbacks are not placed"
    )
    twilio_api_auth_token: SecretStr | None = Field(
        None, description="the REST API password (Basic auth); unset: twiml_auth_token (the same account)"
    )
    twilio_api_timeout_s: float = Field(10.0, gt=0, le=60, description="one Calls create request gets this long")
    twiml_error_message: str = Field(
        "We are sorry, we cannot take your call right now. Goodbye.",
        description="said (then hang up) when a webhook request fails",
    )

    @field_validator("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_client_ca_file", "grpc_tokens_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty env variable (a ConfigMap entry left blank) means "not set", not the path "".
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def grpc_tls(self) -> bool:
        """CallControl serves TLS."""
        return self.grpc_tls_cert_file is not None and self.grpc_tls_key_file is not None

    @field_validator("twilio_api_base_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{v!r}: the REST API's root, http(s)://host[:port][/prefix] (e.g. https://api.twilio.com)")
        return v.rstrip("/")

    @property
    def outbound_enabled(self) -> bool:
        """TwiML callbacks are placed through the CPaaS REST API."""
        return self.twiml_enabled and bool(self.twilio_account_sid.strip())

    @field_validator("twiml_public_base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                f"{v!r}: the public URL of this webhook's root, http(s)://host[:port][/prefix] without ?query or #fragment "
                "(e.g. https://calls.example.com)"
            )
        return v.rstrip("/")
