"""The simulator's servers: aiohttp (POST /ping/<buyer_id>) and grpc.aio (switchboard.v1.Bidding/Ping, /Post).

Both share `Simulator.plan()`: per ping one draw of fault, latency, decline,
availability and bid from a per-buyer seeded RNG (so a buyer's sequence of
answers does not depend on how other buyers' pings interleave). GET /stats
returns what each buyer was asked and answered.

Posts (ping_post): a body with "type": "post" on /ping/<buyer_id> (the bidder's
choice: the same URL as the ping) or any body on /post/<buyer_id>; gRPC Post.
`Simulator.plan_post()` draws post fault, latency and rejection from a second
per-buyer RNG, so posts never shift a buyer's sequence of bids.
A buyer with a secret signs every 2xx answer (header X-Switchboard-Signature over
the raw body; gRPC trailing metadata over the deterministic response bytes)
unless its fault is `unsigned` (no signature) or `bad_signature` (a wrong one).
With `record` (--record FILE) every request body received is appended as one
JSON line {"kind": "ping"|"post", "buyer_id", "body"} — tests check what buyers saw.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import grpc
import structlog
from aiohttp import web
from google.protobuf import json_format

from switchboard.buyersim.config import SimBuyer, SimConfig
from switchboard.platform import signing
from switchboard.v1 import bidding_pb2 as bpb
from switchboard.v1 import bidding_pb2_grpc

log = structlog.get_logger("buyersim")

MAX_SLEEP_S = 30.0  # a `timeout` fault never holds a handler longer than this
PAST_DEADLINE_S = 0.5  # how far past the deadline a `timeout` fault sleeps


@dataclass(frozen=True)
class Plan:
    fault: str | None
    latency_s: float
    decline: bool
    available: bool
    bid: Decimal


@dataclass(frozen=True)
class PostPlan:
    fault: str | None
    latency_s: float
    reject: bool


class Simulator:
    def __init__(self, config: SimConfig, record: Path | None = None) -> None:
        self.config = config
        self.buyers = config.by_id()
        self._rngs = {b.id: random.Random(f"{config.seed}:{b.id}") for b in config.buyers}
        self._post_rngs = {b.id: random.Random(f"{config.seed}:{b.id}:post") for b in config.buyers}
        self.stats: dict[str, Counter] = defaultdict(Counter)
        self.record_path = record

    def record(self, kind: str, buyer_id: str, body: object) -> None:
        if self.record_path is None:
            return
        line = json.dumps({"kind": kind, "buyer_id": buyer_id, "body": body}, separators=(",", ":"))
        with open(self.record_path, "a") as f:  # one small write per request; tests read it line by line
            f.write(line + "\n")

    def plan_post(self, buyer: SimBuyer) -> PostPlan:
        rng = self._post_rngs[buyer.id]
        fault = buyer.draw_fault(rng, buyer.post_faults)
        latency = buyer.draw_latency_s(rng)
        reject = rng.random() < buyer.post_reject_rate
        if fault == "slow":
            latency += buyer.slow_ms / 1000
        return PostPlan(fault, latency, reject)

    def post_answer(self, buyer: SimBuyer, plan: PostPlan) -> dict:
        if plan.reject:
            return {"accept": False, "reason": buyer.post_reject_reason}
        return {"accept": True}

    def plan(self, buyer: SimBuyer) -> Plan:
        rng = self._rngs[buyer.id]
        # Always draw everything, in the same order, so one buyer's sequence is reproducible.
        fault = buyer.draw_fault(rng)
        latency = buyer.draw_latency_s(rng)
        decline = rng.random() < buyer.decline_rate
        available = rng.random() < buyer.available_rate
        bid = buyer.draw_bid(rng)
        if fault == "slow":
            latency += buyer.slow_ms / 1000
        return Plan(fault, latency, decline, available, bid)

    def answer(self, buyer: SimBuyer, plan: Plan) -> dict:
        if plan.decline:
            return {"accept": False, "reason": buyer.decline_reason}
        return {"bid": f"{plan.bid:.2f}", "accept": True, "available": plan.available}

    def count(self, buyer_id: str, what: str) -> None:
        self.stats[buyer_id][what] += 1


def sleep_past_deadline_s(deadline_epoch: float | None, timeout_ms: int) -> float:
    """How long a `timeout` fault sleeps: until just past the ping's deadline (or its timeout)."""
    wait = deadline_epoch - time.time() + PAST_DEADLINE_S if deadline_epoch is not None else timeout_ms / 1000 + PAST_DEADLINE_S
    return min(MAX_SLEEP_S, max(PAST_DEADLINE_S, wait))


def parse_rfc3339(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()  # 3.11 reads the "Z" suffix
    except ValueError:
        return None


def answer_signature(buyer: SimBuyer, fault: str | None, body: bytes, call_id: str, auction_id: str) -> str | None:
    """The signature a buyer puts on its answer `body` to `auction_id` of `call_id` (signing.sign_answer); None when
    it has no secret or plays `unsigned`."""
    if buyer.secret is None or fault == "unsigned":
        return None
    if fault == "bad_signature":  # well-formed, current, but the wrong key
        return signing.sign_answer(buyer.secret + "-not-quite", call_id, auction_id, body)
    return signing.sign_answer(buyer.secret, call_id, auction_id, body)


# ------------------------------------------------------------------ HTTP


def _reset(request: web.Request) -> None:
    """Drop the connection without an answer; SO_LINGER 0 makes the close a TCP reset."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def signed_json(buyer: SimBuyer, fault: str | None, body: bytes, req: dict) -> web.Response:
    """A 200 JSON answer with the buyer's answer signature (if any) over exactly these bytes, for the request `req`."""
    sig = answer_signature(buyer, fault, body, str(req.get("call_id", "")), str(req.get("auction_id", "")))
    headers = {signing.HEADER: sig} if sig is not None else {}
    return web.Response(body=body, content_type="application/json", headers=headers)


def _json_bytes(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def http_app(sim: Simulator) -> web.Application:
    async def ping(request: web.Request) -> web.StreamResponse:
        buyer_id = request.match_info["buyer_id"]
        buyer = sim.buyers.get(buyer_id)
        if buyer is None:
            sim.count(buyer_id, "unknown")
            return web.json_response({"error": f"no simulated buyer {buyer_id!r}"}, status=404)
        sim.count(buyer_id, "requests")
        body = await request.read()
        if buyer.secret is not None and not signing.verify_signature(buyer.secret, request.headers.get(signing.HEADER), body):
            sim.count(buyer_id, "bad_signature")
            return web.json_response({"error": "bad signature"}, status=401)
        try:
            req = json.loads(body)
            assert isinstance(req, dict)
        except (ValueError, AssertionError):
            sim.count(buyer_id, "bad_request")
            return web.json_response({"error": "not a JSON object"}, status=400)
        if req.get("type") == "post" or request.match_info.get("kind") == "post":
            return await post(request, buyer, req)
        sim.record("ping", buyer_id, req)
        if "caller_number" in req or "number" in req:
            sim.count(buyer_id, "caller_number_leaked")
        plan = sim.plan(buyer)
        sim.count(buyer_id, f"fault:{plan.fault}" if plan.fault else "answered")
        if plan.fault == "timeout":
            await asyncio.sleep(sleep_past_deadline_s(parse_rfc3339(req.get("deadline")), int(req.get("timeout_ms") or 0)))
        else:
            await asyncio.sleep(plan.latency_s)
        if plan.fault == "http_500":
            return web.json_response({"error": "simulated failure"}, status=500)
        if plan.fault == "garbage":  # signed: a buyer's own garbage is malformed, not unsigned
            return signed_json(buyer, plan.fault, b'{"bid": 12.5, "accept": tru', req)
        if plan.fault == "reset":
            _reset(request)
            raise asyncio.CancelledError  # aiohttp drops a cancelled handler quietly; nothing is written
        return signed_json(buyer, plan.fault, _json_bytes(sim.answer(buyer, plan)), req)

    async def post(request: web.Request, buyer: SimBuyer, req: dict) -> web.StreamResponse:
        sim.record("post", buyer.id, req)
        sim.count(buyer.id, "posts")
        plan = sim.plan_post(buyer)
        sim.count(buyer.id, f"post_fault:{plan.fault}" if plan.fault else ("post_rejected" if plan.reject else "post_accepted"))
        if plan.fault == "timeout":
            await asyncio.sleep(sleep_past_deadline_s(parse_rfc3339(req.get("deadline")), int(req.get("timeout_ms") or 0)))
        else:
            await asyncio.sleep(plan.latency_s)
        if plan.fault == "http_500":
            return web.json_response({"error": "simulated failure"}, status=500)
        if plan.fault == "garbage":
            return signed_json(buyer, plan.fault, b'{"accept": tr', req)
        if plan.fault == "reset":
            _reset(request)
            raise asyncio.CancelledError
        return signed_json(buyer, plan.fault, _json_bytes(sim.post_answer(buyer, plan)), req)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({k: dict(v) for k, v in sim.stats.items()})

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/{kind:ping|post}/{buyer_id}", ping)
    app.router.add_get("/stats", stats)
    return app


# ------------------------------------------------------------------ gRPC


class BiddingServicer(bidding_pb2_grpc.BiddingServicer):
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def Ping(self, request: bpb.PingRequest, context: grpc.aio.ServicerContext) -> bpb.PingResponse:
        sim = self.sim
        buyer = sim.buyers.get(request.buyer_id)
        if buyer is None:
            sim.count(request.buyer_id, "unknown")
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no simulated buyer {request.buyer_id!r}")
        sim.count(buyer.id, "requests")
        if buyer.secret is not None:
            header = dict(context.invocation_metadata() or ()).get(signing.GRPC_METADATA_KEY)
            if not signing.verify_signature(buyer.secret, header, request.SerializeToString(deterministic=True)):
                sim.count(buyer.id, "bad_signature")
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad signature")
        sim.record("ping", buyer.id, json_format.MessageToDict(request, preserving_proto_field_name=True))
        plan = sim.plan(buyer)
        sim.count(buyer.id, f"fault:{plan.fault}" if plan.fault else "answered")
        if plan.fault == "timeout":
            deadline = request.deadline.seconds + request.deadline.nanos / 1e9 if request.HasField("deadline") else None
            await asyncio.sleep(sleep_past_deadline_s(deadline, request.timeout_ms))
        else:
            await asyncio.sleep(plan.latency_s)
        if plan.fault == "http_500":
            await context.abort(grpc.StatusCode.INTERNAL, "simulated failure")
        if plan.fault == "reset":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "simulated connection reset")
        if plan.fault == "garbage":
            resp = bpb.PingResponse(accept=True, bid="twelve fifty")
        else:
            a = sim.answer(buyer, plan)
            if not a["accept"]:
                resp = bpb.PingResponse(accept=False, reason=a["reason"])
            else:
                resp = bpb.PingResponse(accept=True, bid=a["bid"], available=a["available"])
        return _sign_grpc(buyer, plan.fault, resp, context, request)

    async def Post(self, request: bpb.PostRequest, context: grpc.aio.ServicerContext) -> bpb.PostResponse:
        sim = self.sim
        buyer = sim.buyers.get(request.buyer_id)
        if buyer is None:
            sim.count(request.buyer_id, "unknown")
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no simulated buyer {request.buyer_id!r}")
        if buyer.secret is not None:
            header = dict(context.invocation_metadata() or ()).get(signing.GRPC_METADATA_KEY)
            if not signing.verify_signature(buyer.secret, header, request.SerializeToString(deterministic=True)):
                sim.count(buyer.id, "bad_signature")
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad signature")
        sim.record("post", buyer.id, json_format.MessageToDict(request, preserving_proto_field_name=True))
        sim.count(buyer.id, "posts")
        plan = sim.plan_post(buyer)
        sim.count(buyer.id, f"post_fault:{plan.fault}" if plan.fault else ("post_rejected" if plan.reject else "post_accepted"))
        if plan.fault == "timeout":
            deadline = request.deadline.seconds + request.deadline.nanos / 1e9 if request.HasField("deadline") else None
            await asyncio.sleep(sleep_past_deadline_s(deadline, request.timeout_ms))
        else:
            await asyncio.sleep(plan.latency_s)
        if plan.fault in ("http_500", "garbage"):
            await context.abort(grpc.StatusCode.INTERNAL, "simulated failure")
        if plan.fault == "reset":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "simulated connection reset")
        a = sim.post_answer(buyer, plan)
        return _sign_grpc(buyer, plan.fault, bpb.PostResponse(accept=a["accept"], reason=a.get("reason", "")), context, request)


def _sign_grpc(
    buyer: SimBuyer,
    fault: str | None,
    resp: bpb.PingResponse | bpb.PostResponse,
    context: grpc.aio.ServicerContext,
    request: bpb.PingRequest | bpb.PostRequest,
):
    """Put the answer signature in trailing metadata (it is known only once the response is)."""
    sig = answer_signature(buyer, fault, resp.SerializeToString(deterministic=True), request.call_id, request.auction_id)
    if sig is not None:
        context.set_trailing_metadata(((signing.GRPC_METADATA_KEY, sig),))
    return resp


# ------------------------------------------------------------------ both


class BuyerSim:
    """Both servers on `host` (ephemeral ports unless given); start() binds, stop() closes.

    `grpc_tls` (PEM private key, PEM certificate chain) serves gRPC over TLS: a grpcs:// buyer.
    """

    def __init__(
        self,
        config: SimConfig,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        record: Path | None = None,
        grpc_tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.sim = Simulator(config, record)
        self.grpc_tls = grpc_tls
        self.host = host
        self._want_http, self._want_grpc = http_port, grpc_port
        self.http_port = 0
        self.grpc_port = 0
        self._runner: web.AppRunner | None = None
        self._grpc: grpc.aio.Server | None = None

    async def start(self) -> None:
        # handler_cancellation: a ping whose client gave up stops sleeping at once.
        self._runner = web.AppRunner(http_app(self.sim), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._want_http)
        await site.start()
        self.http_port = self._runner.addresses[0][1]  # the runner's one site: (host, port) of its socket
        self._grpc = grpc.aio.server()
        bidding_pb2_grpc.add_BiddingServicer_to_server(BiddingServicer(self.sim), self._grpc)
        address = f"{self.host}:{self._want_grpc}"
        if self.grpc_tls is None:
            self.grpc_port = self._grpc.add_insecure_port(address)
        else:
            self.grpc_port = self._grpc.add_secure_port(address, grpc.ssl_server_credentials([self.grpc_tls]))
        await self._grpc.start()

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
            self._grpc = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def http_url(self, buyer_id: str) -> str:
        return f"http://{self.host}:{self.http_port}/ping/{buyer_id}"

    def grpc_url(self) -> str:
        return f"{'grpcs' if self.grpc_tls else 'grpc'}://{self.host}:{self.grpc_port}"
