"""Screen pop enrichment (docs/CTI.md, "Enrichment"): cti asks the matching CRMs about the caller, signed, and puts
what they answer within the deadline on the pop; a CRM that hangs costs the pop its deadline and nothing else.

A real aiohttp CRM on loopback verifies each lookup with `standardwebhooks`; a real cti process; the session broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from switchboard.platform import codec
from switchboard.platform.topics import CALL_ROUTED, CTI_EVENTS
from switchboard.v1 import events_pb2 as pb
from tests.support import new_call_id, service_env, start_service, stop_services, wait_event

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "c3dpdGNoYm9hcmQtY3JtLWxvb2t1cC10ZXN0"  # base64 of a test key

CONFIG = """\
version: 1
publishers: [{{id: pub, min_price: 1.00}}]
buyers:
  - {{id: private, destination: "+18005550100", bid: {{type: static, price: 40.00}}}}
  - {{id: sharer, destination: "+18005550101", share_caller_number: true, bid: {{type: static, price: 40.00}}}}
  - {{id: slow, destination: "+18005550102", bid: {{type: static, price: 40.00}}}}
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: pub
    routing: {{tiers: [{{strategy: price, buyers: [private, sharer, slow]}}]}}
crm_endpoints:
  - id: acme
    url: "http://127.0.0.1:{port}/hooks"
    events: [call.ended]
    buyers: [private, sharer]
    secret_env: TEST_CRM_SECRET
    lookup: {{url: "http://127.0.0.1:{port}/lookup", timeout_ms: 3000}}
  - id: hanging
    url: "http://127.0.0.1:{port}/hooks"
    events: [call.ended]
    buyers: [slow]
    secret_env: TEST_CRM_SECRET
    lookup: {{url: "http://127.0.0.1:{port}/hang", timeout_ms: 200}}
"""


@dataclass
class Crm:
    lookups: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    hung: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def lookup(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            doc = Webhook(SECRET).verify(body, {k.lower(): v for k, v in request.headers.items()})
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=400)
        self.lookups.append(doc)
        return web.json_response({"fields": {"crm_id": f"A-{doc['data']['buyer_id']}", "tier": "gold"}})

    async def hang(self, request: web.Request) -> web.Response:
        self.hung += 1
        await self.release.wait()
        return web.json_response({"fields": {"late": "yes"}})

    async def hooks(self, request: web.Request) -> web.Response:
        return web.Response(status=200)


@pytest.fixture
async def crm() -> AsyncIterator[tuple[Crm, int]]:
    crm = Crm()
    app = web.Application()
    app.router.add_post("/lookup", crm.lookup)
    app.router.add_post("/hang", crm.hang)
    app.router.add_post("/hooks", crm.hooks)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield crm, runner.addresses[0][1]
    finally:
        crm.release.set()
        await runner.cleanup()


def routed(cid: str, buyer: str) -> pb.CallRouted:
    return pb.CallRouted(
        event_id=codec.new_id(),
        call_id=cid,
        occurred_at=codec.now_ts(),
        call_started_at=codec.now_ts(),
        campaign_id="c1",
        publisher_id="pub",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id=buyer,
        price="40.00",
        attempt=1,
        strategy="price",
        caller=pb.Caller(number="+13105550188", state="CA", zip="90210"),
        answers={"homeowner": "yes"},
    )


def pop_of(cid: str):
    return lambda e: e.call_id == cid and e.type == pb.CTI_EVENT_TYPE_CALL_ROUTED


async def test_pops_carry_what_the_crm_answers_and_the_number_only_where_shared(crm, broker, bus, kafka, tmp_path):
    server, port = crm
    config = tmp_path / "routing.yaml"
    config.write_text(CONFIG.format(port=port))
    env = service_env(
        broker.kafka_settings(), config, SWITCHBOARD_CTI_GROUP_ID=f"cti-lookup-{new_call_id()}", TEST_CRM_SECRET=SECRET
    )
    cti = start_service("cti", env, tmp_path)
    try:
        private, sharer, slow = new_call_id(), new_call_id(), new_call_id()
        await bus.publish(CALL_ROUTED, routed(private, "private"))
        await bus.publish(CALL_ROUTED, routed(sharer, "sharer"))
        [a] = await wait_event(kafka, CTI_EVENTS, pop_of(private), timeout_s=60)
        [b] = await wait_event(kafka, CTI_EVENTS, pop_of(sharer), timeout_s=60)
        assert dict(a.crm_fields) == {"crm_id": "A-private", "tier": "gold"}
        assert dict(b.crm_fields) == {"crm_id": "A-sharer", "tier": "gold"}
        assert server.bad_signatures == 0
        asked = {d["data"]["call_id"]: d["data"] for d in server.lookups}
        assert asked[private]["caller"] == {"state": "CA", "zip": "90210", "area_code": "", "timezone": ""}  # no number
        assert asked[sharer]["caller"]["number"] == "+13105550188"  # share_caller_number
        assert asked[private]["answers"] == {"homeowner": "yes"} and asked[private]["buyer_id"] == "private"
        # A CRM that never answers: the pop goes out without its fields once the 200 ms deadline passes.
        await bus.publish(CALL_ROUTED, routed(slow, "slow"))
        [c] = await wait_event(kafka, CTI_EVENTS, pop_of(slow), timeout_s=60)
        assert dict(c.crm_fields) == {} and server.hung == 1
    finally:
        server.release.set()
        stop_services(cti)
