"""The demo CRM receiver (`python -m switchboard.demo.crm`) as a process on loopback, fed signed deliveries.

The deliveries are built and signed as cti builds and signs them (platform.webhook_payload and
standardwebhooks), so what the receiver accepts here is what it accepts from cti in `make run`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from switchboard.demo.crm import DEMO_CRM_SECRET_ENV, HOOK_PATH, CrmCounts, new_secret
from switchboard.platform.webhook_payload import webhook_body
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess

pytestmark = pytest.mark.integration

CALLER = "+13125550142"


def event(kind: int, call_id: str, earlier: tuple[str, ...] = ()) -> pb.CtiEvent:
    ev = pb.CtiEvent(event_id=str(uuid.uuid4()), call_id=call_id, type=kind, campaign_id="auto-insurance", buyer_id="b1")
    ev.occurred_at.FromDatetime(datetime.now(UTC))
    ev.caller.number = CALLER
    ev.caller.area_code = "312"
    for past in earlier:
        ev.history.add(call_id=past, campaign_id="auto-insurance")
    return ev


def signed(secret: str, ev: pb.CtiEvent, webhook_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(webhook_body(ev), separators=(",", ":"))
    wid = webhook_id or ev.event_id
    now = datetime.now(UTC)
    headers = {
        "webhook-id": wid,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(wid, now, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[tuple[ServiceProcess, str, str]]:
    """The receiver with a fresh secret: (process, its hook URL, the secret)."""
    secret = new_secret()
    proc = ServiceProcess(
        "crm", {DEMO_CRM_SECRET_ENV: secret}, tmp_path / "ready", tmp_path / "crm.log", module="switchboard.demo.crm"
    )
    try:
        info = proc.wait_ready(30)
        yield proc, f"http://127.0.0.1:{info['http_port']}", secret
    finally:
        assert proc.stop() == 0, proc.logs()


def test_signed_accepted_tampered_refused_duplicate_counted_once(crm: tuple[ServiceProcess, str, str]) -> None:
    proc, base, secret = crm
    pop = event(pb.CTI_EVENT_TYPE_CALL_ROUTED, "call-2", earlier=("call-1", "call-0"))
    first = event(pb.CTI_EVENT_TYPE_CALL_ROUTED, "call-9")
    with httpx.Client(base_url=base, timeout=10) as http:
        body, headers = signed(secret, pop)
        assert http.post(HOOK_PATH, content=body, headers=headers).status_code == 204
        assert http.post(HOOK_PATH, content=body, headers=headers).status_code == 200  # a redelivery: same webhook-id
        body2, headers2 = signed(secret, first)
        assert http.post(HOOK_PATH, content=body2, headers=headers2).status_code == 204

        tampered = body.replace(b'"call-2"', b'"call-3"')
        assert tampered != body
        assert http.post(HOOK_PATH, content=tampered, headers=headers).status_code == 401
        other_key, headers3 = signed(new_secret(), event(pb.CTI_EVENT_TYPE_CALL_ENDED, "call-4"))
        assert http.post(HOOK_PATH, content=other_key, headers=headers3).status_code == 401
        unsigned = {k: v for k, v in headers.items() if k != "webhook-signature"}
        assert http.post(HOOK_PATH, content=body, headers=unsigned).status_code == 401

        counts = CrmCounts.model_validate_json(http.get("/stats").content)
    assert counts.deliveries == 2
    assert counts.duplicates == 1
    assert counts.bad_signatures == 3
    assert counts.pops_with_history == 1  # call-9 came without history
    assert counts.last_pop is not None and (counts.last_pop.call_id, counts.last_pop.earlier) == ("call-2", 2)

    proc.stop()
    lines = proc.logs(tail=0).splitlines()
    deliveries = [ln for ln in lines if "crm_delivery" in ln]
    assert len(deliveries) == 2, lines  # one line per delivery; the duplicate and the refused ones are not deliveries
    pop_line = next(ln for ln in deliveries if "call-2" in ln)
    for part in ("call.routed", pop.event_id, "call-1", "call-0"):
        assert part in pop_line, pop_line
    digits = CALLER.lstrip("+")
    assert not [ln for ln in lines if digits[-10:] in ln], "a caller number in crm.log"


def test_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    proc = ServiceProcess("crm", {DEMO_CRM_SECRET_ENV: ""}, tmp_path, tmp_path / "crm.log", module="switchboard.demo.crm")
    assert proc.wait(30) == 2
    assert f"environment variable {DEMO_CRM_SECRET_ENV} does not hold a Standard Webhooks secret" in proc.logs()
