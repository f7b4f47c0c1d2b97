"""The TwiML hold loop and callbacks of the ivr process: a waiting caller hears its place (queue.status), accepts a
callback with key 1, and is called back through the CPaaS REST API — a real HTTP server on loopback acting as
the Twilio API (it records Calls create and checks the Basic auth) — then answers on the ivr's TwiML endpoints.

The test plays the queue (QueueStatus, CallRouted with callback_attempt) and the CPaaS (signed webhooks).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from switchboard.platform.kafka import EventBus
from switchboard.platform.topics import CALL_ENDED, CALLBACK_REQUESTED
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_ivr_twiml import PUBLIC, TOKEN, Call, Cpaas, Verb, new_caller, new_sid, only, said, tags
from tests.support import (
    ServiceProcess,
    event_bus,
    publish_agent_offer,
    publish_queue_status,
    read_all,
    running_service,
    service_env,
    until,
    wait_event,
)

pytestmark = pytest.mark.integration

NUMBER = "+18885550778"
ACCOUNT = "AC" + secrets.token_hex(16)
API_TOKEN = secrets.token_hex(16)
HOLD_URL = "https://media.example.test/hold.mp3"
CONFIG = f"""\
version: 1
publishers: [{{id: pub}}]
campaigns:
  - id: inhouse
    numbers: ["{NUMBER}"]
    publisher: pub
    routing: {{tiers: [{{strategy: queue, queue: sales}}]}}
queues:
  - {{id: sales, max_wait_s: 600, callback_offer_after_s: 60}}
agents:
  - {{id: ana, queues: [sales], destination: "sip:ana@switchboard.local"}}
"""


# -- the pretend Twilio REST API --------------------------------------------------------------------
@dataclass
class CreatedCall:
    path: str
    auth: tuple[str, str]
    form: dict[str, str]
    sid: str


@dataclass
class RestApi:
    """Calls create on loopback: records every request; answers 401 on bad Basic auth, `fail_next` → 500."""

    calls: list[CreatedCall] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the test output is enough
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
                user, _, password = base64.b64decode(encoded or "").decode().partition(":")
                with api.lock:
                    if scheme != "Basic" or (user, password) != (ACCOUNT, API_TOKEN):
                        api.refused.append(self.path)
                        return self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    if self.path != f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json":
                        return self._answer(404, {"code": 20404, "message": "not found", "status": 404})
                    if api.fail_next:
                        api.fail_next -= 1
                        api.calls.append(CreatedCall(self.path, (user, password), form, ""))
                        return self._answer(500, {"code": 20500, "message": "internal error", "status": 500})
                    sid = "CA" + secrets.token_hex(16)
                    api.calls.append(CreatedCall(self.path, (user, password), form, sid))
                self._answer(201, {"sid": sid, "account_sid": ACCOUNT, "status": "queued", "to": form.get("To")})

            def _answer(self, status: int, payload: dict[str, object]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def created_for(self, call_id: str) -> list[CreatedCall]:
        with self.lock:
            return [c for c in self.calls if f"call={call_id}" in c.form.get("Url", "")]


@pytest.fixture(scope="module")
def rest_api() -> Iterator[tuple[RestApi, str]]:
    api = RestApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def ivr(broker, tmp_path_factory, rest_api) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("twiml-hold")
    (work / "acd.yaml").write_text(CONFIG)
    env = service_env(
        broker.kafka_settings(),
        work / "acd.yaml",
        SWITCHBOARD_IVR_TWIML_ENABLED="true",
        SWITCHBOARD_IVR_TWIML_AUTH_TOKEN=TOKEN,
        SWITCHBOARD_IVR_TWIML_PUBLIC_BASE_URL=PUBLIC,
        SWITCHBOARD_IVR_TWIML_ROUTE_WAIT_S="0.3",
        SWITCHBOARD_IVR_TWIML_DIAL_GRACE_S="2",
        SWITCHBOARD_IVR_TWIML_HOLD_URL=HOLD_URL,
        SWITCHBOARD_IVR_TWILIO_API_BASE_URL=rest_api[1],
        SWITCHBOARD_IVR_TWILIO_ACCOUNT_SID=ACCOUNT,
        SWITCHBOARD_IVR_TWILIO_API_AUTH_TOKEN=API_TOKEN,
    )
    with running_service("ivr", env, work) as service:
        yield service


@pytest.fixture
async def cpaas(ivr) -> Cpaas:
    c = Cpaas(ivr.info["twiml_port"])
    try:
        yield c
    finally:
        await c.http.aclose()


# -- the queue's side ------------------------------------------------------------------------------
async def _until_hold(c: Call, redirect: Verb, polls: int = 100) -> list[Verb]:
    """Follow the hold loop's <Redirect>s until a WAITING answer (an announcement and the hold music)."""
    for _ in range(polls):
        verbs = await c.follow(redirect)
        if "Play" in tags(verbs):
            return verbs
        redirect = verbs[-1]
        assert redirect.tag == "Redirect", verbs
    raise AssertionError(f"no announcement after {polls} polls")


async def _waiting_offered(cpaas: Cpaas, bus: EventBus) -> tuple[Call, Verb]:
    """A TwiML caller waiting in the queue that is offered a callback: the call and the offer's <Gather>."""
    c = Call(cpaas, new_sid(), new_caller(), NUMBER)
    first = await c.voice()
    assert tags(first)[-1] == "Redirect"  # routing pending
    await publish_queue_status(bus, c.sid, 2, 90)
    held = await _until_hold(c, first[-1])
    assert tags(held) == ["Say", "Play", "Redirect"]
    assert said(held) == ["You are number 2 in line. Your expected wait is 2 minutes."]
    assert only(held, "Play").text == HOLD_URL and "/twiml/route" in held[-1].text
    await publish_queue_status(bus, c.sid, 2, 300, offered=True)
    offer = await _until_hold(c, held[-1])
    assert tags(offer) == ["Gather", "Play", "Redirect"]
    gather = offer[0]
    assert (gather.attrs["numDigits"], gather.attrs["input"]) == ("1", "dtmf speech")
    assert said(gather.children)[0].endswith("press 1 or say yes.")
    return c, gather


def _outbound_url(created: CreatedCall, key: str) -> str:
    url = created.form[key]
    assert url.startswith(PUBLIC + "/twiml/callback/"), url
    return url


# -- tests ----------------------------------------------------------------------------------------
async def test_hold_loop_key_1_and_the_callback_through_the_rest_api(cpaas, kafka, rest_api):
    api, _ = rest_api
    async with event_bus(kafka) as bus:
        c, gather = await _waiting_offered(cpaas, bus)
        accepted = await c.press(gather, "1")
        assert tags(accepted) == ["Say", "Hangup"] and "We will call you back" in said(accepted)[0]
        [requested] = await wait_event(kafka, CALLBACK_REQUESTED, lambda e: e.call_id == c.sid)
        assert requested.queue_id == "sales"
        assert await c.hang_up() == []  # the caller's leg ends; the call waits on virtual hold

        # The queue reserves ana: the ivr asks the REST API to call the caller back.
        await publish_agent_offer(bus, c.sid, 1, callback_attempt=1)
        await until("the first Calls create", lambda: api.created_for(c.sid))
        [first] = api.created_for(c.sid)
        assert first.auth == (ACCOUNT, API_TOKEN) and not api.refused
        assert (first.form["To"], first.form["From"]) == (c.caller, NUMBER)
        assert _outbound_url(first, "Url").endswith("/twiml/callback/answered?" + f"call={c.sid}&attempt=1")
        status_url = _outbound_url(first, "StatusCallback")

        # Not answered: CALLBACK_NO_ANSWER for offer 1; the call stays on hold for the next try.
        leg = Call(cpaas, first.sid, NUMBER, c.caller, status="no-answer")
        assert (await cpaas.post(status_url, leg.params())).status_code == 200
        [no_answer] = await wait_event(
            kafka, CALL_ENDED, lambda e: e.call_id == c.sid and e.outcome == pb.CALL_OUTCOME_CALLBACK_NO_ANSWER
        )
        assert (no_answer.attempt, no_answer.agent_id) == (1, "ana")

        # The retry is answered: the greeting, then the reserved agent.
        await publish_agent_offer(bus, c.sid, 2, callback_attempt=2)
        await until("the second Calls create", lambda: len(api.created_for(c.sid)) == 2)
        second = api.created_for(c.sid)[1]
        leg = Call(cpaas, second.sid, NUMBER, c.caller)
        answered = await cpaas.twiml(_outbound_url(second, "Url"), leg.params())
        assert tags(answered) == ["Say", "Dial"]
        assert said(answered) == ["Hello, this is your callback. Please hold while we connect you to an agent."]
        dial = only(answered, "Dial")
        assert [(v.tag, v.text) for v in dial.children] == [("Sip", "sip:ana@switchboard.local")]
        leg.status = "completed"  # the caller hung up after talking
        assert tags(await leg.dial_ended(dial, "completed", seconds=61)) == ["Hangup"]
        assert (await cpaas.post(_outbound_url(second, "StatusCallback"), leg.params())).status_code == 200
    [done] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid and e.outcome == pb.CALL_OUTCOME_ANSWERED)
    assert (done.attempt, done.connected_seconds, done.agent_id) == (2, 61, "ana")
    ended = await read_all(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
    assert sorted(e.outcome for e in ended) == [pb.CALL_OUTCOME_ANSWERED, pb.CALL_OUTCOME_CALLBACK_NO_ANSWER]


async def test_other_key_keeps_waiting_and_a_refused_create_counts_as_not_answered(cpaas, kafka, rest_api):
    api, _ = rest_api
    async with event_bus(kafka) as bus:
        c, gather = await _waiting_offered(cpaas, bus)
        kept = await c.press(gather, "2")
        assert tags(kept)[-1] == "Redirect" and "Hangup" not in tags(kept)  # still on hold
        said_yes = await c.speak(gather, "yes please")
        assert tags(said_yes) == ["Say", "Hangup"]
        api.fail_next = 1
        await publish_agent_offer(bus, c.sid, 1, callback_attempt=1)
        [failed] = await wait_event(
            kafka, CALL_ENDED, lambda e: e.call_id == c.sid and e.outcome == pb.CALL_OUTCOME_CALLBACK_NO_ANSWER
        )
    assert failed.attempt == 1 and len(api.created_for(c.sid)) == 1
