"""`crm_endpoints`: CRMs that receive cti events as signed webhooks (docs/CONFIG.md, docs/CTI.md).

Each endpoint is one HTTP(S) URL that gets every matching cti.events event as a Standard Webhooks
delivery, retried with backoff for `max_attempts` within `max_age_s`, then dead-lettered. The
secret is never written in the configuration: `secret_env` names the environment variable of the
cti process that holds it (a Standard Webhooks secret, `whsec_` + base64), so only cti needs it and
every other service can load the same file without it. Delivery is services/cti/webhooks.py; which
events an endpoint gets is core/webhooks.py `matches`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from switchboard.core.config.types import _Model

# The webhook `type` of each CtiEventType that an endpoint can ask for (platform.webhook_payload names them;
# a unit test keeps the two lists equal).
WebhookEvent = Literal["call.routed", "call.ended"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("call.routed", "call.ended")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HTTP_URL = re.compile(r"^https?://[^/\s]+")


class CrmLookup(_Model):
    """Enrichment: at each screen pop the endpoint's CRM is asked for what it knows of the call's caller."""

    url: str  # POSTed a signed JSON request; answers {"fields": {name: value}}
    timeout_ms: int = Field(300, ge=10, le=5000)  # the pop waits this long at most

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


def _http_url(v: str) -> str:
    if not _HTTP_URL.match(v):
        raise ValueError(
            f'{v!r} must be an http:// or https:// URL with a host (write it like "https://crm.example.com/hooks/switchboard")'
        )
    return v


class CrmEndpoint(_Model):
    id: str
    url: str  # where deliveries are POSTed
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1)
    # Filters (docs/CONFIG.md): empty = every one. `buyers` and `queues` both name the call's target, so an
    # event matches when its buyer is in `buyers` or its queue in `queues` (with either list set).
    buyers: list[str] = []
    campaigns: list[str] = []
    queues: list[str] = []
    secret_env: str  # environment variable of the cti process holding the endpoint's whsec_ secret
    max_attempts: int = Field(8, ge=1)  # HTTP attempts per event, the first included
    max_age_s: int = Field(3600, ge=1)  # no retry later than this after the event happened
    timeout_ms: int = Field(5000, ge=1)  # one attempt's deadline (connect + answer)
    lookup: CrmLookup | None = None  # enrich the screen pops this endpoint matches (docs/CTI.md, "Enrichment")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str) -> str:
        if not _ENV_NAME.match(v) or v.startswith("whsec_"):  # whsec_...: the secret itself, pasted here
            # The value is not repeated: a secret pasted here by mistake must not reach a log or a terminal.
            raise ValueError(
                "is not an environment variable name (name the variable that holds the secret, "
                "e.g. secret_env: ACME_CRM_WEBHOOK_SECRET; never the secret itself)"
            )
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        twice = sorted({e for e in v if v.count(e) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once (list each event once)")
        return v
