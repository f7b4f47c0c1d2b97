"""Screen pop enrichment: ask the CRMs of the matching crm_endpoints what they know of the caller (docs/CTI.md,
"Enrichment").

For a call.routed, every endpoint with a `lookup` whose filters cover the pop (core.webhooks.covers) is
POSTed, all at once, a signed JSON request (Standard Webhooks headers with the endpoint's secret, type
`lookup`):

    {"type": "lookup", "timestamp": ..., "data": {"call_id", "campaign_id", "publisher_id", "kind", "buyer_id",
     "agent_id", "queue_id", "caller": {"state", "zip", "area_code", "timezone", "number"?}, "answers"}}

`caller.number` and the `answers` only as the call's target may see them (core.sharing: the number for an
in-house agent or a buyer with `share_caller_number`, not in a `direct` offer; a buyer's `share_answers`). A 2xx answer `{"fields": {name: value}}` (strings) is merged
into the pop's `crm_fields`, in configuration order. The pop waits for the slowest of them up to its
`timeout_ms`, never longer; what has not answered by then is left out (counted `timeout`). An endpoint whose
lookups fail three times in a row is skipped for 30 s (core.webhooks.LookupBreaker): cti reads its input in
order, and a CRM that is down must not cost every pop its whole deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import httpx
import structlog
from prometheus_client import Counter, Histogram
from standardwebhooks import Webhook

from switchboard.core import sharing
from switchboard.core.config import Buyer, RoutingConfig
from switchboard.core.config.crm import CrmEndpoint
from switchboard.core.webhooks import LookupBreaker, covers
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

LOOKUPS = Counter(
    "switchboard_crm_lookups",
    "screen pop lookups by endpoint and result (ok, http_4xx, http_5xx, timeout, connection_error, bad_answer, skipped)",
    ["endpoint", "result"],
)
LOOKUP_SECONDS = Histogram(
    "switchboard_crm_lookup_seconds",
    "time a screen pop waited for one CRM lookup (at most its timeout_ms)",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
)
MAX_FIELDS = 100


def request_data(buyers: Mapping[str, Buyer], event: pb.CtiEvent) -> dict[str, object]:
    caller = {
        "state": event.caller.state,
        "zip": event.caller.zip,
        "area_code": event.caller.area_code,
        "timezone": event.caller.timezone,
    }
    shown = sharing.for_cti_event(event, buyers)
    if shown.number:
        caller["number"] = event.caller.number
    return {
        "call_id": event.call_id,
        "campaign_id": event.campaign_id,
        "publisher_id": event.publisher_id,
        "kind": pb.TargetKind.Name(event.kind),
        "buyer_id": event.buyer_id,
        "agent_id": event.agent_id,
        "queue_id": event.queue_id,
        "caller": caller,
        "answers": shown.shown_answers(event.answers),
    }


class BadAnswer(ValueError):
    """A lookup answer that is not {"fields": {name: string}}."""


def fields_of(body: bytes) -> dict[str, str]:
    """The `fields` of a lookup answer; ValueError (BadAnswer, or a JSON error) when it is not {"fields": {...}}."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("fields"), dict):
        raise BadAnswer('expected {"fields": {...}}')
    fields = doc["fields"]
    if len(fields) > MAX_FIELDS or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise BadAnswer(f"fields must be at most {MAX_FIELDS} string values")
    return fields


class CrmLookups:
    def __init__(self, config: RoutingConfig, signers: Mapping[str, Webhook]) -> None:
        self.buyers = {b.id: b for b in config.buyers}  # once, not at every pop
        self.endpoints: Sequence[CrmEndpoint] = [e for e in config.crm_endpoints if e.lookup is not None]
        self.signers = signers
        self.breakers = {e.id: LookupBreaker() for e in self.endpoints}
        self.client = httpx.AsyncClient() if self.endpoints else None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def enrich(self, pop: pb.CtiEvent) -> None:
        """Merge what the matching CRMs answer in time into `pop.crm_fields`."""
        asked = [e for e in self.endpoints if covers(e, pop)]  # its webhook `events` do not matter here
        if not asked or self.client is None:
            return
        now = time.monotonic()
        ready = [e for e in asked if self.breakers[e.id].allows(now)]
        for e in asked:
            if e not in ready:
                LOOKUPS.labels(e.id, "skipped").inc()
        if not ready:
            return
        data = request_data(self.buyers, pop)
        results = await asyncio.gather(*(self._ask(e, data, pop.event_id) for e in ready))
        for fields in results:  # configuration order: a later endpoint's field wins
            pop.crm_fields.update(fields)

    async def _ask(self, endpoint: CrmEndpoint, data: dict[str, object], event_id: str) -> dict[str, str]:
        assert endpoint.lookup is not None and self.client is not None
        timeout_s = endpoint.lookup.timeout_ms / 1000
        signed_at = datetime.now(UTC)
        body = json.dumps({"type": "lookup", "timestamp": signed_at.isoformat(), "data": data}, separators=(",", ":"))
        msg_id = f"lookup-{event_id}"
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(signed_at.timestamp())),
            "webhook-signature": self.signers[endpoint.id].sign(msg_id, signed_at, body),
        }
        started = time.monotonic()
        result, fields = "ok", {}
        try:
            # wait_for bounds the whole exchange (connect, send, answer), not each phase as httpx's timeout does.
            answer = await asyncio.wait_for(
                self.client.post(endpoint.lookup.url, content=body, headers=headers, timeout=timeout_s), timeout_s
            )
            if not 200 <= answer.status_code < 300:
                result = f"http_{answer.status_code // 100}xx"
            else:
                fields = fields_of(answer.content)
        except (TimeoutError, httpx.TimeoutException):
            result = "timeout"
        except httpx.HTTPError:
            result = "connection_error"
        except ValueError:  # not JSON, or not {"fields": {...}}
            result = "bad_answer"
        LOOKUP_SECONDS.labels(endpoint.id).observe(time.monotonic() - started)
        LOOKUPS.labels(endpoint.id, result).inc()
        if self.breakers[endpoint.id].record(result == "ok", time.monotonic()):
            log.warning(
                "crm_lookup_paused", endpoint=endpoint.id, last=result, cool_down_s=self.breakers[endpoint.id].cool_down_s
            )
        return fields
