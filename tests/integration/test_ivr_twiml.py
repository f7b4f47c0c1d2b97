"""The TwiML webhook of the ivr process: signed form posts as a Twilio-style CPaaS sends them, TwiML parsed back.

The ivr runs behind a pretend proxy: the CPaaS reaches it at PUBLIC (https, a path
prefix), signs that URL, and the proxy forwards to the loopback port. The tests
stand in for the router by publishing call.routed / call.rejected themselves.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from twilio.request_validator import RequestValidator

from switchboard.platform import codec
from switchboard.platform.topics import CALL_ENDED, CALL_REJECTED, CALL_ROUTED, CALL_STARTED, IVR_COMPLETED
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, event_bus, read_all, running_service, service_env, wait_event

pytestmark = pytest.mark.integration

QUALIFY = "+18885550401"  # campaign qualify: runs the flow, duplicate_window 1h
PLAIN = "+18885550402"  # campaign plain: no flow (completed with no answers)
BLOCKED_CALLER = "+13105550000"
PUBLIC = "https://calls.example.test/edge"  # where the CPaaS reaches the webhook (through the proxy)
TOKEN = secrets.token_hex(16)
ROUTE_WAIT_S = 0.3
DIAL_GRACE_S = 2.0

CONFIG = f"""version: 1
blocklist: {{numbers: ["{BLOCKED_CALLER}"]}}
publishers: [{{id: pub}}]
buyers:
  - {{id: b1, destination: "+18005550100", bid: {{type: static, price: 10}}, billable_after_s: 90}}
  - {{id: b2, destination: "sip:sales@buyer2.example.com", bid: {{type: static, price: 9}}, billable_after_s: 90}}
campaigns:
  - id: qualify
    numbers: ["{QUALIFY}"]
    publisher: pub
    ivr: flow
    duplicate_window: 1h
    routing: {{tiers: [{{strategy: price, buyers: [b1, b2]}}]}}
  - id: plain
    numbers: ["{PLAIN}"]
    publisher: pub
    routing: {{tiers: [{{strategy: price, buyers: [b1, b2]}}]}}
ivr_flows:
  - id: flow
    start: language
    nodes:
      language:
        type: set_language
        prompt: "For English press 1. Para español oprima 2."
        options: {{1: en, 2: {{language: es, say: [espanol]}}}}
        next: homeowner
      homeowner:
        type: question
        prompt: {{en: "Do you own your home?", es: "¿Es dueño de su casa?"}}
        retry_prompt: {{en: "Press 1 for yes, 2 for no.", es: "Oprima 1 para sí, 2 para no."}}
        answer_key: homeowner
        validate: {{yes_no: true}}
        retries: 1
        next: zip
      zip:
        type: question
        input: digits
        prompt: {{en: "Your ZIP code?", es: "¿Su código postal?"}}
        answer_key: zip
        validate: {{pattern: '\\d{{5}}'}}
        next: bill
      bill:
        type: question
        prompt: {{en: "Monthly bill?", es: "¿Factura mensual?"}}
        answer_key: monthly_bill
        validate: {{min: 0, max: 5000}}
        branches: [{{when: {{lt: 50}}, goto: low}}]
        next: done
      done: {{type: end, result: qualified, prompt: {{en: "Connecting you.", es: "Le comunicamos."}}}}
      low: {{type: end, result: disqualified, reason: low_bill, prompt: {{en: "Sorry, no savings.", es: "Lo sentimos."}}}}
"""


# -- the pretend CPaaS ------------------------------------------------------------------------------
@dataclass
class Verb:
    tag: str
    attrs: dict[str, str]
    text: str
    children: list[Verb]


def parse(body: str) -> list[Verb]:
    """The verbs of a TwiML <Response>."""
    root = ET.fromstring(body)
    assert root.tag == "Response", body

    def verb(el: ET.Element) -> Verb:
        return Verb(el.tag, dict(el.attrib), (el.text or "").strip(), [verb(c) for c in el])

    return [verb(el) for el in root]


def tags(verbs: list[Verb]) -> list[str]:
    return [v.tag for v in verbs]


class Cpaas:
    """Posts webhooks the way Twilio does: form-encoded, signed over the public URL, to the proxy's upstream."""

    def __init__(self, port: int, token: str = TOKEN) -> None:
        self.upstream = f"http://127.0.0.1:{port}"
        self.validator = RequestValidator(token)
        self.http = httpx.AsyncClient(timeout=10)

    def local(self, url: str) -> str:
        assert url.startswith(PUBLIC + "/"), f"callback URL {url} is not under the public base {PUBLIC}"
        return self.upstream + url.removeprefix(PUBLIC)

    async def post(self, url: str, params: dict[str, str], signature: str | None = None) -> httpx.Response:
        sig = self.validator.compute_signature(url, params) if signature is None else signature
        headers = {"X-Twilio-Signature": sig} if sig else {}
        return await self.http.post(self.local(url), data=params, headers=headers)

    async def twiml(self, url: str, params: dict[str, str]) -> list[Verb]:
        resp = await self.post(url, params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("application/xml")
        return parse(resp.text)


@dataclass
class Call:
    """One inbound call as the CPaaS sees it."""

    cpaas: Cpaas
    sid: str
    caller: str
    dialed: str
    status: str = "in-progress"

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "AccountSid": "AC" + "0" * 32,
            "ApiVersion": "2010-04-01",
            "CallSid": self.sid,
            "CallStatus": self.status,
            "Called": self.dialed,
            "Caller": self.caller,
            "Direction": "inbound",
            "From": self.caller,
            "FromCountry": "US",
            "To": self.dialed,
            "ToCountry": "US",
            **extra,
        }

    async def voice(self) -> list[Verb]:
        return await self.cpaas.twiml(f"{PUBLIC}/twiml/voice", self.params())

    async def follow(self, verb: Verb, **extra: str) -> list[Verb]:
        """Post where a <Gather action> or <Redirect> points (the fallthrough of an unanswered Gather has no input)."""
        url = verb.attrs["action"] if verb.tag in ("Gather", "Dial") else verb.text
        assert verb.attrs.get("method", "POST") == "POST"
        return await self.cpaas.twiml(url, self.params(**extra))

    async def decided(self, redirect: Verb, polls: int = 50) -> list[Verb]:
        """Follow <Redirect>s to /twiml/route as the CPaaS does until the answer is something else (a decision)."""
        for _ in range(polls):
            verbs = await self.follow(redirect)
            if tags(verbs)[-1:] != ["Redirect"]:
                return verbs
            redirect = verbs[-1]
        raise AssertionError(f"still pending after {polls} polls")

    async def press(self, gather: Verb, digits: str) -> list[Verb]:
        return await self.follow(gather, Digits=digits, FinishedOnKey="")

    async def speak(self, gather: Verb, text: str) -> list[Verb]:
        return await self.follow(gather, SpeechResult=text, Confidence="0.91")

    async def dial_ended(self, dial: Verb, status: str, seconds: int = 0) -> list[Verb]:
        extra = {"DialCallStatus": status, "DialCallSid": "CA" + secrets.token_hex(16), "DialCallDuration": str(seconds)}
        if status != "completed":
            del extra["DialCallDuration"]  # Twilio sends it only for a connected dial
        return await self.follow(dial, **extra)

    async def hang_up(self) -> list[Verb]:
        """The number's status callback: the call is over."""
        self.status = "completed"
        return await self.cpaas.twiml(
            f"{PUBLIC}/twiml/status", self.params(CallDuration="42", CallbackSource="call-progress-events")
        )


def new_sid() -> str:
    return "CA" + secrets.token_hex(16)


def new_caller() -> str:
    return f"+1213{random.randint(200, 999)}{random.randint(0, 9999):04d}"


def routed(call_id: str, attempt: int, buyer: str = "b1", destination: str = "+18005550100") -> pb.CallRouted:
    return pb.CallRouted(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        campaign_id="qualify",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id=buyer,
        destination=destination,
        price="10.00",
        attempt=attempt,
        billable_after_s=90,
    )


def only(verbs: list[Verb], tag: str) -> Verb:
    [found] = [v for v in verbs if v.tag == tag]
    return found


def said(verbs: list[Verb]) -> list[str]:
    return [v.text for v in verbs if v.tag == "Say"]


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ivr-twiml")
    (workdir / "routing.yaml").write_text(CONFIG)
    return workdir


def twiml_env(broker, workdir) -> dict[str, str]:
    return service_env(
        broker.kafka_settings(),
        workdir / "routing.yaml",
        SWITCHBOARD_IVR_TWIML_ENABLED="true",
        SWITCHBOARD_IVR_TWIML_AUTH_TOKEN=TOKEN,
        SWITCHBOARD_IVR_TWIML_PUBLIC_BASE_URL=PUBLIC,
        SWITCHBOARD_IVR_TWIML_ROUTE_WAIT_S=str(ROUTE_WAIT_S),
        SWITCHBOARD_IVR_TWIML_DIAL_GRACE_S=str(DIAL_GRACE_S),
        SWITCHBOARD_IVR_TWIML_DIAL_TIMEOUT_S="25",
    )


@pytest.fixture(scope="module")
def ivr(broker, workdir) -> Iterator[ServiceProcess]:
    with running_service("ivr", twiml_env(broker, workdir), workdir) as service:
        yield service


@pytest.fixture
async def cpaas(ivr) -> Cpaas:
    c = Cpaas(ivr.info["twiml_port"])
    try:
        yield c
    finally:
        await c.http.aclose()


def call(cpaas: Cpaas, dialed: str = QUALIFY, caller: str | None = None) -> Call:
    return Call(cpaas, new_sid(), caller or new_caller(), dialed)


# -- tests ------------------------------------------------------------------------------------------
async def test_whole_call_through_the_flow_to_a_second_offer(cpaas, kafka, ivr):
    assert ivr.info["twiml_host"] == "127.0.0.1" and ivr.info["grpc_port"]
    c = call(cpaas)
    first = await c.voice()
    assert tags(first) == ["Gather", "Redirect"]
    gather = first[0]
    assert gather.attrs == {
        "action": f"{PUBLIC}/twiml/gather?step=0",
        "method": "POST",
        "input": "dtmf speech",
        "language": "en-US",
        "numDigits": "1",
        "timeout": "5",
        "speechTimeout": "auto",
    }
    assert said(gather.children) == ["For English press 1. Para español oprima 2."]
    assert first[1].text == gather.attrs["action"]  # no input: the same action, with no Digits (an invalid answer)
    assert tags(await c.voice()) == ["Gather", "Redirect"]  # a retried voice webhook starts nothing twice

    p = await c.speak(gather, "Español")
    gather = p[0]
    assert (gather.attrs["language"], gather.attrs["action"], said(gather.children)) == (
        "es-MX",
        f"{PUBLIC}/twiml/gather?step=1",
        ["¿Es dueño de su casa?"],
    )
    assert "numDigits" not in gather.attrs
    p = await c.press(gather, "1")
    zip_prompt = p[0]
    assert said(zip_prompt.children) == ["¿Su código postal?"] and zip_prompt.attrs["input"] == "dtmf"
    again = await c.press(gather, "1")  # the CPaaS retried the homeowner answer: it counts once
    assert again[0].attrs == zip_prompt.attrs and said(again[0].children) == ["¿Su código postal?"]
    p = await c.press(zip_prompt, "90210")
    p = await c.speak(p[0], "one hundred twenty")
    assert tags(p) == ["Say", "Redirect"]
    assert (p[0].text, p[0].attrs["language"], p[1].text) == ("Le comunicamos.", "es-MX", f"{PUBLIC}/twiml/route?poll=0")

    [done] = await wait_event(kafka, IVR_COMPLETED, lambda e: e.call_id == c.sid)
    assert dict(done.answers) == {"language": "es", "homeowner": "yes", "zip": "90210", "monthly_bill": "120"}
    assert (done.caller.number, done.caller.zip, done.dialed_number, done.campaign_id) == (c.caller, "90210", QUALIFY, "qualify")

    async with event_bus(kafka) as bus:  # stand in for the router
        await bus.publish(CALL_ROUTED, routed(c.sid, 1))
        dial = only(await c.decided(p[1]), "Dial")
        assert dial.attrs == {"action": f"{PUBLIC}/twiml/dial?attempt=1", "method": "POST", "timeout": "25"}
        assert [(n.tag, n.text) for n in dial.children] == [("Number", "+18005550100")]

        held = await c.dial_ended(dial, "no-answer")  # nobody took offer 1; the router has not decided again yet
        assert tags(held) == ["Say", "Redirect"] and held[1].text == f"{PUBLIC}/twiml/route?poll=1"
        assert said(held) == ["Please hold while we connect your call."]
        [no_answer] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
        assert (no_answer.outcome, no_answer.attempt, no_answer.buyer_id) == (pb.CALL_OUTCOME_NO_ANSWER, 1, "b1")

        await bus.publish(CALL_ROUTED, routed(c.sid, 2, "b2", "sip:sales@buyer2.example.com"))
        dial2 = only(await c.decided(held[1]), "Dial")
    assert dial2.attrs["action"] == f"{PUBLIC}/twiml/dial?attempt=2"
    assert [(n.tag, n.text) for n in dial2.children] == [("Sip", "sip:sales@buyer2.example.com")]
    # A late retry of offer 1's dial action reports nothing against offer 2: the caller is sent to offer 2 again.
    assert only(await c.dial_ended(dial, "no-answer"), "Dial").attrs == dial2.attrs

    c.status = "completed"  # the caller talked with b2 for 95 s, then hung up
    assert tags(await c.dial_ended(dial2, "completed", 95)) == ["Hangup"]
    assert tags(await c.hang_up()) == []  # the status callback after the end changes nothing
    ended = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid, count=2)
    assert [(e.outcome, e.attempt, e.buyer_id, e.connected_seconds) for e in ended] == [
        (pb.CALL_OUTCOME_NO_ANSWER, 1, "b1", 0),
        (pb.CALL_OUTCOME_ANSWERED, 2, "b2", 95),
    ]
    [started] = await read_all(kafka, CALL_STARTED, lambda e: e.call_id == c.sid)
    assert (started.dialed_number, started.caller.number, started.caller.state) == (QUALIFY, c.caller, "CA")
    assert len(await read_all(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)) == 2
    assert len(await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == c.sid)) == 1


async def test_no_input_reprompts_and_a_low_bill_is_told_goodbye(cpaas, kafka):
    c = call(cpaas)
    p = await c.press((await c.voice())[0], "1")
    gather = p[0]
    timed_out = await c.follow(p[1])  # the <Gather> got nothing: the CPaaS follows the <Redirect>
    assert said(timed_out[0].children) == ["Press 1 for yes, 2 for no."]  # the retry prompt, same question
    p = await c.speak(timed_out[0], "yes")
    assert gather.attrs["action"] != p[0].attrs["action"]
    p = await c.press(p[0], "90001")
    bye = await c.press(p[0], "20")
    assert tags(bye) == ["Say", "Hangup"] and said(bye) == ["Sorry, no savings."]
    [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == c.sid)
    assert (rejected.reason, rejected.announcement) == ("disqualified", "Sorry, no savings.")
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
    assert (ended.outcome, ended.attempt, ended.buyer_id) == (pb.CALL_OUTCOME_CALLER_HANGUP, 0, "")
    assert await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == c.sid) == []
    # Retries after the end: a silent hang-up, nothing published again.
    assert tags(await c.press(p[0], "20")) == ["Hangup"]
    assert tags(await c.voice()) == ["Hangup"]
    assert tags(await c.hang_up()) == []
    assert len(await read_all(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)) == 1
    assert len(await read_all(kafka, CALL_STARTED, lambda e: e.call_id == c.sid)) == 1


async def test_a_caller_who_hangs_up_during_a_gather_is_rejected_abandoned(cpaas, kafka):
    """The number's status callback in the middle of the flow: the ivr gives the call its one outcome."""
    c = call(cpaas)
    p = await c.press((await c.voice())[0], "1")  # English; now asked whether they own their home
    assert tags(await c.hang_up()) == []
    [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == c.sid)
    assert (rejected.reason, rejected.announcement) == ("abandoned", "")
    assert rejected.detail.startswith("the caller hung up in the IVR, at IVR node")
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
    assert (ended.outcome, ended.attempt, ended.routing_pending) == (pb.CALL_OUTCOME_CALLER_HANGUP, 0, False)
    assert await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == c.sid) == []
    # A late gather callback after the hang-up: a silent hang-up, nothing published again.
    assert tags(await c.press(p[0], "1")) == ["Hangup"]
    assert tags(await c.hang_up()) == []
    assert len(await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == c.sid)) == 1


async def test_blocked_duplicate_and_unknown_number_callers_hear_the_announcement_and_are_hung_up(cpaas, kafka):
    blocked = call(cpaas, caller=BLOCKED_CALLER)
    bye = await blocked.voice()
    assert tags(bye) == ["Say", "Hangup"] and said(bye) == ["We are unable to take your call. Goodbye."]

    caller = new_caller()
    first = call(cpaas, caller=caller)
    assert tags(await first.voice()) == ["Gather", "Redirect"]
    dup = call(cpaas, caller=caller)
    bye = await dup.voice()
    assert tags(bye) == ["Say", "Hangup"] and said(bye) == ["Our records show you called recently. We will be in touch. Goodbye."]

    unknown = call(cpaas, dialed="+18885550499")
    bye = await unknown.voice()
    assert tags(bye) == ["Say", "Hangup"] and said(bye) == ["The number you have dialed is not in service. Goodbye."]

    for c, reason in ((blocked, "blocked"), (dup, "duplicate"), (unknown, "unknown_number")):
        [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e, c=c: e.call_id == c.sid)
        assert rejected.reason == reason
        [ended] = await wait_event(kafka, CALL_ENDED, lambda e, c=c: e.call_id == c.sid)
        assert (ended.outcome, ended.attempt) == (pb.CALL_OUTCOME_CALLER_HANGUP, 0)
    assert tags(await first.hang_up()) == []  # the first caller hung up during the IVR
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == first.sid)
    assert (ended.outcome, ended.attempt, ended.connected_seconds) == (pb.CALL_OUTCOME_CALLER_HANGUP, 0, 0)


async def test_missing_or_bad_signature_is_refused_and_changes_nothing(cpaas, kafka, ivr):
    c = call(cpaas)
    url, params = f"{PUBLIC}/twiml/voice", c.params()
    local_url = f"http://127.0.0.1:{ivr.info['twiml_port']}/twiml/voice"
    forged = {**params, "From": "+13105550001"}
    refused = [
        await cpaas.post(url, params, signature=""),  # no X-Twilio-Signature
        await cpaas.post(url, params, signature=RequestValidator("not-the-token").compute_signature(url, params)),
        await cpaas.post(
            url, params, signature=cpaas.validator.compute_signature(local_url, params)
        ),  # not the URL the CPaaS requested
        await cpaas.http.post(
            cpaas.local(url), data=forged, headers={"X-Twilio-Signature": cpaas.validator.compute_signature(url, params)}
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert "X-Twilio-Signature" in refused[0].text
    assert await read_all(kafka, CALL_STARTED, lambda e: e.call_id == c.sid) == []
    # The same request, signed as the CPaaS signs it, is taken: nothing of the refused ones was kept.
    assert tags(await c.voice()) == ["Gather", "Redirect"]
    [started] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == c.sid)
    assert started.caller.number == c.caller
    bad_gather = await cpaas.post(f"{PUBLIC}/twiml/gather?step=0", c.params(Digits="2"), signature="bm90IGEgc2lnbmF0dXJl")
    assert bad_gather.status_code == 403
    assert said((await c.voice())[0].children) == ["For English press 1. Para español oprima 2."]  # still at the first prompt
    await c.hang_up()


async def test_pending_routing_redirects_to_poll_again_until_the_decision(cpaas, kafka):
    c = call(cpaas, dialed=PLAIN)
    first = await c.voice()  # no flow: completed with no answers, then routing (pending: no router here)
    assert tags(first) == ["Say", "Redirect"] and said(first) == ["Please hold while we connect your call."]
    assert first[1].text == f"{PUBLIC}/twiml/route?poll=1"
    [done] = await wait_event(kafka, IVR_COMPLETED, lambda e: e.call_id == c.sid)
    assert (done.campaign_id, dict(done.answers), done.qualified) == ("plain", {}, True)
    again = await c.follow(first[1])
    assert (
        tags(again) == ["Redirect"] and again[0].text == f"{PUBLIC}/twiml/route?poll=2"
    )  # the hold message is not said every poll
    async with event_bus(kafka) as bus:
        await bus.publish(
            CALL_REJECTED,
            pb.CallRejected(
                event_id=codec.new_id(),
                call_id=c.sid,
                occurred_at=codec.now_ts(),
                reason="no_eligible_buyer",
                announcement="Sorry, nobody can take your call.",
            ),
        )
    bye = await c.decided(again[0])
    assert tags(bye) == ["Say", "Hangup"] and said(bye) == ["Sorry, nobody can take your call."]
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
    assert (ended.outcome, ended.attempt) == (pb.CALL_OUTCOME_CALLER_HANGUP, 0)
    assert len(await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == c.sid)) == 1


async def test_buyer_hangups_reroute_below_billable_and_end_the_call_after(cpaas, kafka):
    c = call(cpaas, dialed=PLAIN)
    held = await c.voice()
    async with event_bus(kafka) as bus:
        await bus.publish(CALL_ROUTED, routed(c.sid, 1))
        dial = only(await c.decided(held[1]), "Dial")
        rerouted = await c.dial_ended(dial, "completed", 30)  # b1 hung up on the caller after 30 s (< 90)
        [early] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
        assert (early.outcome, early.connected_seconds, early.attempt) == (pb.CALL_OUTCOME_BUYER_HANGUP, 30, 1)
        await bus.publish(CALL_ROUTED, routed(c.sid, 2, "b2", "sip:sales@buyer2.example.com"))
        dial2 = only(await c.decided(rerouted[-1]), "Dial")
        busy = await c.dial_ended(dial2, "busy")
        await bus.publish(CALL_ROUTED, routed(c.sid, 3))
        dial3 = only(await c.decided(busy[-1]), "Dial")
    assert dial3.attrs["action"].endswith("attempt=3")
    assert tags(await c.dial_ended(dial3, "completed", 120)) == ["Hangup"]  # a sale: the call is over
    ended = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid, count=3)
    assert [(e.outcome, e.attempt, e.buyer_id, e.connected_seconds) for e in ended] == [
        (pb.CALL_OUTCOME_BUYER_HANGUP, 1, "b1", 30),
        (pb.CALL_OUTCOME_BUSY, 2, "b2", 0),
        (pb.CALL_OUTCOME_BUYER_HANGUP, 3, "b1", 120),
    ]


async def test_caller_hanging_up_during_a_dial(cpaas, kafka):
    # The status callback may come before the dial action: the dial action (with the talk time) reports the offer.
    c = call(cpaas, dialed=PLAIN)
    held = await c.voice()
    async with event_bus(kafka) as bus:
        await bus.publish(CALL_ROUTED, routed(c.sid, 1))
        dial = only(await c.decided(held[1]), "Dial")
    c.status = "completed"  # the caller hung up while talking to b1 (40 s)
    status = asyncio.ensure_future(c.hang_up())
    assert tags(await c.dial_ended(dial, "completed", 40)) == ["Hangup"]
    assert tags(await status) == []
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
    assert (ended.outcome, ended.attempt, ended.connected_seconds) == (pb.CALL_OUTCOME_ANSWERED, 1, 40)

    # No dial action at all within the grace: the status callback ends the offer as the caller's hang-up.
    c = call(cpaas, dialed=PLAIN)
    held = await c.voice()
    async with event_bus(kafka) as bus:
        await bus.publish(CALL_ROUTED, routed(c.sid, 1))
        dial = only(await c.decided(held[1]), "Dial")
    assert tags(await c.hang_up()) == []
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)
    assert (ended.outcome, ended.attempt, ended.buyer_id) == (pb.CALL_OUTCOME_CALLER_HANGUP, 1, "b1")
    assert tags(await c.dial_ended(dial, "no-answer")) == ["Hangup"]  # late: nothing more
    assert len(await read_all(kafka, CALL_ENDED, lambda e: e.call_id == c.sid)) == 1


async def test_unknown_call_gets_a_spoken_error_not_a_500(cpaas):
    c = call(cpaas)
    for path in ("gather?step=0", "route?poll=0", "dial?attempt=1"):
        verbs = await cpaas.twiml(f"{PUBLIC}/twiml/{path}", c.params(Digits="1", DialCallStatus="busy"))
        assert tags(verbs) == ["Say", "Hangup"] and said(verbs) == [
            "We are sorry, we cannot take your call right now. Goodbye."
        ], path
    no_sid = await cpaas.twiml(f"{PUBLIC}/twiml/voice", {k: v for k, v in c.params().items() if k != "CallSid"})
    assert tags(no_sid) == ["Say", "Hangup"]


def test_refuses_to_start_without_an_auth_token(broker, tmp_path):
    (tmp_path / "routing.yaml").write_text(CONFIG)
    env = service_env(broker.kafka_settings(), tmp_path / "routing.yaml", SWITCHBOARD_IVR_TWIML_ENABLED="true")
    env["SWITCHBOARD_IVR_TWIML_AUTH_TOKEN"] = ""  # whatever the test runner's environment holds
    service = ServiceProcess("ivr", env, tmp_path / "ready", tmp_path / "ivr.log")
    assert service.wait(30) == 2
    log = service.logs()
    assert "SWITCHBOARD_IVR_TWIML_AUTH_TOKEN" in log and "SWITCHBOARD_IVR_TWIML_VALIDATE_SIGNATURE=false" in log
    assert not service.ready_file.exists()


async def test_calls_dialed_before_a_sigkill_end_through_the_restarted_instance(broker, workdir, kafka):
    """docs/IVR.md, "Restarts and replicas": the dial action and the status callback of calls bridged by an ivr that
    was then killed (SIGKILL) reach the restarted one, which knows the calls and their offers and ends them."""
    env = twiml_env(broker, workdir)
    first = ServiceProcess("ivr", env, workdir / "crash-0", workdir / "crash-0.log")
    first.wait_ready()
    c1 = Cpaas(first.info["twiml_port"])
    answered, hung_up = Call(c1, new_sid(), new_caller(), PLAIN), Call(c1, new_sid(), new_caller(), PLAIN)
    dials = {}
    try:
        async with event_bus(kafka) as bus:
            for c in (answered, hung_up):
                held = await c.voice()
                await bus.publish(CALL_ROUTED, routed(c.sid, 1))
                dials[c.sid] = only(await c.decided(held[1]), "Dial")
    finally:
        await c1.http.aclose()
        first.kill()  # SIGKILL by pid, mid-call
    assert first.proc.returncode == -9
    (workdir / "crash-1").mkdir()
    with running_service("ivr", env, workdir / "crash-1") as again:
        c2 = Cpaas(again.info["twiml_port"])
        try:
            for c in (answered, hung_up):
                c.cpaas = c2
            answered.status = "completed"  # talked 70 s, then hung up: the dial action reports it
            assert tags(await answered.dial_ended(dials[answered.sid], "completed", 70)) == ["Hangup"]
            assert tags(await hung_up.hang_up()) == []  # only the status callback: the caller's hang-up, after the grace
        finally:
            await c2.http.aclose()
    ended = {e.call_id: e for e in await read_all(kafka, CALL_ENDED, lambda e: e.call_id in (answered.sid, hung_up.sid))}
    assert (ended[answered.sid].outcome, ended[answered.sid].attempt, ended[answered.sid].connected_seconds) == (
        pb.CALL_OUTCOME_ANSWERED,
        1,
        70,
    )
    assert (ended[hung_up.sid].outcome, ended[hung_up.sid].attempt, ended[hung_up.sid].buyer_id) == (
        pb.CALL_OUTCOME_CALLER_HANGUP,
        1,
        "b1",
    )
