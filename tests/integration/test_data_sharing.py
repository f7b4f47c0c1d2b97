"""The data sharing rule over every strategy and every outlet, with real parts (docs/ROUTING.md "Data sharing").

Router, bidder and cti run as processes on the session broker; RTB buyers are the buyer simulator, which
records every ping and post body it receives; the CRMs are a loopback HTTP server here that records the raw
bytes of every webhook delivery and every screen pop lookup, one crm_endpoint per buyer (so each delivery
belongs to exactly one buyer). The same caller calls every campaign, so pops carry earlier calls.

What must hold: nothing a buyer without `share_caller_number` receives contains the caller's number in any
form; a `direct` offer shows neither the number nor earlier calls, even to a sharing buyer; answers outside
a buyer's `share_answers` never reach it; a buyer's earlier calls are its own. The sharing buyers are the
control that proves each channel is seen: the number does reach them where the rule allows.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks import Webhook

from switchboard.platform import codec
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED, CTI_EVENTS, IVR_COMPLETED
from switchboard.v1 import events_pb2 as pb
from tests.support import BuyerSimProcess, Results, ServiceProcess, ivr, service_env, stop_services, until, wait_event

pytestmark = pytest.mark.integration

NUMBER = "+12135550199"  # tests.support.ivr()'s caller
FORMS = (NUMBER, "2135550199", "555-0199", "5550199")  # E.164, national digits, the line in any layout
SECRET = "whsec_" + "c2hhcmluZy10ZXN0LXNlY3JldC1rZXktMzJieXRlcyE="
SECRET_ENV = "TEST_SHARING_CRM_SECRET"
HIDDEN = "hidden_answer"  # an answer key no buyer of a share_answers list is allowed to see
MARK = "marker-7f3a"  # its value, looked for in raw bytes

SIM = """
seed: 3
buyers:
  - {id: ds-rtb-private, bid: {type: fixed, value: 60}}
  - {id: ds-rtb-sharer,  bid: {type: fixed, value: 55}}
"""

RTB = ["price", "parallel_highest", "parallel_first", "ping_post", "availability"]
STATIC = ["price", "priority", "weight", "even", "direct"]


def routing(http: str, crm: str) -> str:
    buyers = [
        f'  - {{id: ds-rtb-private, destination: "+18005550301", share_answers: [homeowner], bid: {{type: rtb, url: "{http}/ping/ds-rtb-private", timeout_ms: 800}}}}',
        f'  - {{id: ds-rtb-sharer, destination: "+18005550302", share_caller_number: true, share_answers: [homeowner], bid: {{type: rtb, url: "{http}/ping/ds-rtb-sharer", timeout_ms: 800}}}}',
        '  - {id: ds-st-private, destination: "+18005550303", share_answers: [homeowner], bid: {type: static, price: 45.00}}',
        '  - {id: ds-st-sharer, destination: "+18005550304", share_caller_number: true, share_answers: [homeowner], bid: {type: static, price: 35.00}}',
    ]
    campaigns = []
    for s in RTB:
        campaigns.append((f"ds-rtb-{s}", s, "[ds-rtb-private, ds-rtb-sharer]"))
    campaigns.append(("ds-rtb-post-sharer", "ping_post", "[ds-rtb-sharer]"))  # the post control: the sharer wins
    for s in STATIC:
        # direct offers to the first listed: the sharing buyer, who must still get partial data only
        order = "[ds-st-sharer, ds-st-private]" if s == "direct" else "[ds-st-private, ds-st-sharer]"
        campaigns.append((f"ds-st-{s}", s, order))
    lines = ["version: 1", "publishers:", "  - {id: pub, min_price: 15.00}", "buyers:", *buyers, "campaigns:"]
    for i, (cid, strategy, members) in enumerate(campaigns):
        lines.append(
            f'  - {{id: {cid}, numbers: ["+1888555{i:04d}"], publisher: pub,'
            f" routing: {{timeout_ms: 1500, tiers: [{{strategy: {strategy}, buyers: {members}}}]}}}}"
        )
    lines.append("crm_endpoints:")
    for b in ("ds-rtb-private", "ds-rtb-sharer", "ds-st-private", "ds-st-sharer"):
        lines.append(
            f'  - {{id: crm-{b}, url: "{crm}/hooks/{b}", buyers: [{b}], secret_env: {SECRET_ENV},'
            f' lookup: {{url: "{crm}/lookup/{b}", timeout_ms: 2000}}}}'
        )
    return "\n".join(lines) + "\n"


@dataclass
class Crm:
    """Every raw body received, by buyer and kind ("hook" or "lookup")."""

    got: dict[tuple[str, str], list[bytes]] = field(default_factory=lambda: defaultdict(list))
    hook_ids: set[str] = field(default_factory=set)
    bad_signatures: int = 0

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            Webhook(SECRET).verify(raw, {k.lower(): v for k, v in request.headers.items()})
        except Exception:  # noqa: BLE001 — any failure of the check is a bad signature, counted and asserted on
            self.bad_signatures += 1
            return web.Response(status=400)
        if request.headers["webhook-id"] not in self.hook_ids:
            self.hook_ids.add(request.headers["webhook-id"])
            self.got[(request.match_info["buyer"], "hook")].append(raw)
        return web.Response(status=204)

    async def lookup(self, request: web.Request) -> web.Response:
        self.got[(request.match_info["buyer"], "lookup")].append(await request.read())
        return web.json_response({"fields": {}})


@pytest_asyncio.fixture
async def crm() -> AsyncIterator[tuple[Crm, str]]:
    server = Crm()
    app = web.Application()
    app.router.add_post("/hooks/{buyer}", server.hook)
    app.router.add_post("/lookup/{buyer}", server.lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def call(campaign: str) -> pb.IvrCompleted:
    event = ivr(campaign)
    event.answers[HIDDEN] = MARK
    return event


def ended(routed: pb.CallRouted) -> pb.CallEnded:
    return pb.CallEnded(
        event_id=codec.new_id(),
        call_id=routed.call_id,
        occurred_at=codec.now_ts(),
        buyer_id=routed.buyer_id,
        attempt=routed.attempt,
        outcome=pb.CALL_OUTCOME_ANSWERED,
        connected_seconds=120,
    )


def leaks(raw: bytes) -> list[str]:
    text = raw.decode()
    return [f for f in FORMS if f in text]


async def test_the_number_reaches_no_buyer_without_share_caller_number_on_any_strategy_or_outlet(
    broker, bus, kafka, crm, tmp_path: Path
):
    server, crm_url = crm
    (tmp_path / "sim.yaml").write_text(SIM)
    record = tmp_path / "received.jsonl"
    sim = BuyerSimProcess(tmp_path / "sim.yaml", tmp_path, tmp_path / "buyersim.log", "--record", str(record))
    procs: list[ServiceProcess] = []
    try:
        sim.wait_ready()
        config = tmp_path / "routing.yaml"
        config.write_text(routing(f"http://127.0.0.1:{sim.http_port}", crm_url))
        tag = uuid.uuid4().hex[:8]
        env = service_env(
            broker.kafka_settings(),
            config,
            SWITCHBOARD_ROUTER_APP_ID=f"router-ds-{tag}",
            SWITCHBOARD_ROUTER_DATA_DIR=str(tmp_path / "router-data"),
            SWITCHBOARD_BIDDER_GROUP_ID=f"bidder-ds-{tag}",
            SWITCHBOARD_CTI_GROUP_ID=f"cti-ds-{tag}",
            **{SECRET_ENV: SECRET},
        )
        procs = [ServiceProcess(n, env, ready_dir=tmp_path, log=tmp_path / f"{n}.log") for n in ("bidder", "router", "cti")]
        for p in procs:
            p.wait_ready()

        campaigns = [f"ds-rtb-{s}" for s in RTB] + ["ds-rtb-post-sharer"] + [f"ds-st-{s}" for s in STATIC]
        # Two rounds: the second round's pops carry the first round's calls; weight and even alternate buyers.
        routed: list[pb.CallRouted] = []
        async with Results(kafka) as results:
            for _ in range(2):
                for campaign in campaigns:
                    event = call(campaign)
                    await bus.publish(IVR_COMPLETED, event)
                    topic, out = await results.wait_terminal(event.call_id)
                    assert topic == CALL_ROUTED.name, (campaign, out)
                    assert isinstance(out, pb.CallRouted)
                    routed.append(out)
                    # cti reads call.routed and call.ended as two topics: behind on its input, it may read this
                    # before the pop's offer (a wrap-up with no context; the rule then shows nothing at all).
                    await bus.publish(CALL_ENDED, ended(out))
        ids = {r.call_id for r in routed}
        strategy_of = {r.call_id: r.strategy for r in routed}
        # Every call's pop and wrap-up on cti.events, and delivered to its buyer's CRM.
        cti = await wait_event(kafka, CTI_EVENTS, lambda e: e.call_id in ids, count=2 * len(routed), timeout_s=120)
        await until("every cti event delivered", lambda: len(server.hook_ids) >= 2 * len(routed), timeout_s=120)
        assert server.bad_signatures == 0

        # ---- pings and posts, as the buyer simulator received them
        bodies = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        bodies = [b for b in bodies if b["body"].get("call_id") in ids]
        raw_of = {(b["buyer_id"], b["kind"]): [] for b in bodies}
        for b in bodies:
            raw_of[(b["buyer_id"], b["kind"])].append(json.dumps(b["body"]).encode())
            assert MARK not in json.dumps(b["body"]), b  # share_answers: [homeowner]
        for (buyer, kind), raws in raw_of.items():
            if buyer == "ds-rtb-private":
                assert not [leaks(r) for r in raws if leaks(r)], (buyer, kind)
        pings = [b["body"] for b in bodies if b["kind"] == "ping" and b["buyer_id"] == "ds-rtb-sharer"]
        by_strategy = {strategy_of[p["call_id"]]: p for p in pings}
        for s in ("price", "parallel_highest", "parallel_first", "availability"):
            assert by_strategy[s]["caller_number"] == NUMBER, s  # the control: pings do carry it to a sharer
        assert all(p["caller_number"] == "" for p in pings if strategy_of[p["call_id"]] == "ping_post")
        posts = {b["buyer_id"]: b["body"] for b in bodies if b["kind"] == "post"}
        assert posts["ds-rtb-sharer"]["caller_number"] == NUMBER and posts["ds-rtb-private"]["caller_number"] == ""

        # ---- offers: cti.events as read from the broker, per the event's buyer
        offered = defaultdict(set)
        for ev in cti:
            shown = json.dumps(dict(ev.answers)) + "".join(json.dumps(dict(p.answers)) for p in ev.history)
            assert MARK not in shown, ev.call_id
            assert all(p.buyer_id == ev.buyer_id for p in ev.history), ev.call_id  # never a competitor's
            offered[ev.buyer_id].add(strategy_of[ev.call_id])
            if ev.buyer_id in ("ds-rtb-private", "ds-st-private") or ev.strategy == "direct":
                assert ev.caller.number == "", (ev.buyer_id, ev.strategy)
            elif ev.type == pb.CTI_EVENT_TYPE_CALL_ROUTED:  # the control (a wrap-up read before its pop shows nothing)
                assert ev.caller.number == NUMBER, (ev.buyer_id, ev.strategy)
            if ev.strategy == "direct":
                assert not ev.history, ev.call_id
        assert {"direct", "weight", "even"} <= offered["ds-st-sharer"], offered
        assert {"price", "priority", "weight", "even"} <= offered["ds-st-private"], offered
        assert any(ev.history for ev in cti if ev.buyer_id == "ds-st-private"), "the second round's pops carry history"

        # ---- webhooks and lookups, as the CRMs received them
        for (buyer, kind), raws in server.got.items():
            assert raws
            for raw in raws:
                assert MARK not in raw.decode(), (buyer, kind)
                if buyer.endswith("-private"):
                    assert not leaks(raw), (buyer, kind)
                data = json.loads(raw)["data"]
                strategy = strategy_of[data["call_id"]]
                if strategy == "direct":
                    assert not leaks(raw) and not data.get("history"), (buyer, kind)
                elif buyer.endswith("-sharer") and json.loads(raw)["type"] == "call.routed":
                    assert data["caller"]["number"] == NUMBER, (buyer, strategy)  # the control
        lookups = [json.loads(r)["data"] for r in server.got[("ds-st-sharer", "lookup")]]
        assert any(d["caller"].get("number") == NUMBER for d in lookups)
        assert any("number" not in d["caller"] for d in lookups if strategy_of[d["call_id"]] == "direct")
    finally:
        codes = stop_services(*procs)
        sim_code = sim.stop()
        assert all(c == 0 for c in codes.values()) and sim_code == 0, f"unclean shutdown {codes} {sim_code}; logs in {tmp_path}"
