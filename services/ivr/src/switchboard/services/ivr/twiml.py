"""The TwiML voice webhook: a Twilio-style CPaaS drives calls through the ivr's CallDesk (docs/TWIML.md).

The CPaaS posts form-encoded webhooks (CallSid, From, To, CallStatus, Digits,
SpeechResult, DialCallStatus, ...) and runs the TwiML each answer returns.
Every request must carry a valid X-Twilio-Signature (twilio's RequestValidator,
keyed with the account's auth token, over the URL the CPaaS requested — rebuilt
from `twiml_public_base_url` when a proxy sits in front — and the form fields);
one without gets 403 and changes nothing.

Routes (all POST; the CallSid is the call id):
  /twiml/voice          the number's voice URL: StartCall. A rejected caller
                        hears the announcement and is hung up; a flow's first
                        prompt becomes a <Gather>; a campaign without a flow is
                        completed with no answers and goes to routing.
  /twiml/gather?step=n  the <Gather> action: Digits or SpeechResult → SubmitInput.
                        `n` is the number of answers the call had when the
                        prompt was said: a retried request (n no longer current)
                        submits nothing and gets the current prompt again. The
                        end of the flow: qualified → <Say> the end text and
                        <Redirect> to /twiml/route; disqualified → announcement,
                        <Hangup/>.
  /twiml/route?poll=n   AwaitRouting for at most twiml_route_wait_s (a webhook
                        must answer well within the CPaaS's ~15 s timeout):
                        ROUTED → <Dial action=/twiml/dial?attempt=k> with a
                        <Number> or <Sip>; REJECTED → announcement, <Hangup/>;
                        PENDING → hold message (now and then) and <Redirect>
                        back here.
  /twiml/dial?attempt=k the <Dial> action: DialCallStatus → ReportOutcome for
                        offer k (see `dial_outcome`); a re-routable outcome
                        goes on to the next decision as /twiml/route does, an
                        ended call gets <Hangup/>. A retry for an offer already
                        reported reports nothing again.
  /twiml/status         the number's status callback: a caller who hung up
                        during the IVR or on hold → CALLER_HANGUP.

A call this webhook hangs up on (rejected, disqualified) is reported ended at
once (CALLER_HANGUP, attempt 0: no offer), so the desk does not keep it until
its TTL when no status callback is configured; a CPaaS retry after that gets
<Hangup/>. Desk errors (CallError: unknown call, broker down) are spoken — the
error message, then <Hangup/> — never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import grpc
import structlog
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from switchboard.core import ivr as flows
from switchboard.core.config import ConfigError
from switchboard.services.ivr.desk import CallDesk, CallError
from switchboard.services.ivr.outbound import ANSWERED, CALL_STATUS
from switchboard.services.ivr.settings import IvrSettings
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

EDGE = "twiml"  # CallState.edge of the calls this webhook starts: their callbacks go out through the CPaaS REST API

SIGNATURE_HEADER = "X-Twilio-Signature"
VOICE, GATHER, ROUTE, DIAL, STATUS = "/twiml/voice", "/twiml/gather", "/twiml/route", "/twiml/dial", "/twiml/status"
ACCEPT = "/twiml/accept"  # the <Gather> action of a callback offer
# The outbound callback leg (outbound.py creates it through the CPaaS REST API): answered, its <Dial> action, its status.
CALLBACK_DIAL = "/twiml/callback/dial"
# CallStatus values of a call that is over (the caller is gone).
CALL_OVER = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_INPUT = {cc.INPUT_KIND_DIGITS: "dtmf", cc.INPUT_KIND_SPEECH: "speech", cc.INPUT_KIND_DIGITS_OR_SPEECH: "dtmf speech"}
_DIAL_FAILURES = {
    "busy": pb.CALL_OUTCOME_BUSY,
    "no-answer": pb.CALL_OUTCOME_NO_ANSWER,
    "failed": pb.CALL_OUTCOME_FAILED,
    "canceled": pb.CALL_OUTCOME_FAILED,
}

Form = MultiDictProxy[str]


async def _text_form(request: web.Request) -> Form:
    """The text fields of the POSTed form: a CPaaS posts application/x-www-form-urlencoded, which has no files."""
    return MultiDictProxy(MultiDict((k, v) for k, v in (await request.post()).items() if isinstance(v, str)))


def check_settings(settings: IvrSettings) -> None:
    """Refuse to start a webhook that would take unsigned requests by accident."""
    if settings.outbound_enabled and not settings.twiml_public_base_url:
        raise ConfigError(
            [
                "SWITCHBOARD_IVR_TWIML_PUBLIC_BASE_URL: required to place callbacks through the CPaaS REST API "
                "(SWITCHBOARD_IVR_TWILIO_ACCOUNT_SID is set): the outbound call's webhook URLs are built from it; set it "
                "to the URL the CPaaS reaches this webhook at, or unset the account sid"
            ]
        )
    if not settings.twiml_enabled or not settings.twiml_validate_signature:
        return
    token = settings.twiml_auth_token.get_secret_value() if settings.twiml_auth_token else ""
    if not token.strip():
        problem = (
            "SWITCHBOARD_IVR_TWIML_AUTH_TOKEN: required while the TwiML webhook is enabled "
            "(SWITCHBOARD_IVR_TWIML_ENABLED=true) and validates X-Twilio-Signature; set it to the CPaaS account's "
            "auth token, or set SWITCHBOARD_IVR_TWIML_VALIDATE_SIGNATURE=false for a local trial without a CPaaS"
        )
        raise ConfigError([problem])


def dial_outcome(dial_status: str, call_status: str, dial_seconds: int) -> tuple[pb.CallOutcome, int]:
    """(CallOutcome, connected seconds) of one offer from the <Dial> action's DialCallStatus and the caller's CallStatus.

    With the caller still on the line (CallStatus in-progress) the offer ended on the buyer's side:
    completed → BUYER_HANGUP (re-routable below the buyer's billable_after_s), busy / no-answer /
    failed / canceled → BUSY / NO_ANSWER / FAILED / FAILED. With the caller gone, the caller ended
    it: completed → ANSWERED with the talk time, anything else → CALLER_HANGUP (nobody to re-route).
    """
    caller_gone = call_status in CALL_OVER
    if dial_status == "completed":
        return (pb.CALL_OUTCOME_ANSWERED if caller_gone else pb.CALL_OUTCOME_BUYER_HANGUP), max(dial_seconds, 0)
    if caller_gone:
        return pb.CALL_OUTCOME_CALLER_HANGUP, 0
    return _DIAL_FAILURES.get(dial_status, pb.CALL_OUTCOME_FAILED), 0


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


class TwimlWebhook:
    """The aiohttp server of the webhook, over the ivr's CallDesk."""

    def __init__(self, desk: CallDesk, settings: IvrSettings) -> None:
        self.desk = desk
        self.settings = settings
        token = settings.twiml_auth_token.get_secret_value() if settings.twiml_auth_token else ""
        self.validator = RequestValidator(token) if settings.twiml_validate_signature else None
        # call id → set once the <Dial> action of its outstanding offer was handled (the status callback waits for it)
        self.dialing: dict[str, asyncio.Event] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- server --------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._signed])
        handlers: dict[str, Callable[[web.Request, Form], Awaitable[VoiceResponse | None]]] = {
            VOICE: self.voice,
            GATHER: self.gather,
            ROUTE: self.route,
            DIAL: self.dial,
            STATUS: self.status,
            ACCEPT: self.accept,
            ANSWERED: self.callback_answered,
            CALLBACK_DIAL: self.callback_dial,
            CALL_STATUS: self.callback_status,
        }
        for path, handler in handlers.items():
            app.router.add_post(path, self._handler(handler))
        return app

    async def start(self) -> int:
        if self.validator is None:
            log.warning("twiml_signature_validation_off", hint="any client that reaches the port can drive calls")
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.settings.twiml_host, self.settings.twiml_port, shutdown_timeout=self.settings.shutdown_grace_s
        )
        await site.start()
        self.port = self._runner.addresses[0][1]  # the runner's one site: (host, port) of its socket
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- requests ------------------------------------------------------------------------------------
    def _public(self, request: web.Request) -> str:
        """Where the CPaaS reaches this server's root: the configured public URL, else this request's scheme and Host."""
        return self.settings.twiml_public_base_url or f"{request.scheme}://{request.host}"

    def url(self, request: web.Request, path: str, **query: object) -> str:
        """An absolute callback URL for the CPaaS (it signs and requests exactly this text)."""
        return f"{self._public(request)}{path}" + (f"?{urlencode(query)}" if query else "")

    @web.middleware
    async def _signed(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """403 for a request without a valid X-Twilio-Signature, before anything reads or changes a call."""
        if self.validator is not None:
            form = await request.post()
            signature = request.headers.get(SIGNATURE_HEADER, "")
            signed_url = self._public(request) + request.raw_path  # raw_path keeps the query as requested
            if not signature or not self.validator.validate(signed_url, form, signature):
                log.warning(
                    "twiml_signature_refused",
                    path=request.path,
                    reason="missing" if not signature else "mismatch",
                    url=signed_url,
                )
                return web.Response(status=403, text=f"invalid or missing {SIGNATURE_HEADER}\n")
        return await handler(request)

    def _handler(
        self, handle: Callable[[web.Request, Form], Awaitable[VoiceResponse | None]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def respond(request: web.Request) -> web.Response:
            form = await _text_form(request)
            call_id = form.get("CallSid", "")
            try:
                if not call_id:
                    raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "CallSid is required")
                twiml = await handle(request, form)
            except CallError as exc:
                twiml = self._failed(request, call_id, exc)
            except Exception:  # a bug must not leave the caller in dead air: the CPaaS would only say "application error"
                log.exception("twiml_request_failed", call_id=call_id, path=request.path)
                twiml = self._failed(request, call_id, CallError(grpc.StatusCode.INTERNAL, "internal error"))
            return web.Response(text=str(twiml if twiml is not None else VoiceResponse()), content_type="application/xml")

        return respond

    def _failed(self, request: web.Request, call_id: str, exc: CallError) -> VoiceResponse:
        response = VoiceResponse()
        if exc.code == grpc.StatusCode.NOT_FOUND and self.desk.has_ended(call_id):
            log.info("twiml_call_already_ended", call_id=call_id, path=request.path)  # a CPaaS retry after the end
        else:
            log.warning("twiml_call_error", call_id=call_id, path=request.path, code=exc.code.name, error=exc.message)
            self._say(response, self.settings.twiml_error_message)
        response.hangup()
        return response

    # -- TwiML pieces --------------------------------------------------------------------------------
    def _language(self, language: str) -> str | None:
        if not language or "-" in language:
            return language or None
        return self.settings.twiml_languages.get(language, language)

    def _say(self, parent: VoiceResponse, text: str, language: str = "") -> None:
        if text:
            parent.say(text, voice=self.settings.twiml_voice or None, language=self._language(language))

    def _gather(self, request: web.Request, prompt: cc.IvrPrompt, step: int) -> VoiceResponse:
        """The prompt as a <Gather>; when it times out without input the <Redirect> posts an empty answer (invalid)."""
        action = self.url(request, GATHER, step=step)
        inputs = _INPUT.get(prompt.expects, "dtmf speech")
        response = VoiceResponse()
        gather = response.gather(
            input=inputs,
            action=action,
            method="POST",
            timeout=self.settings.twiml_gather_timeout_s,
            num_digits=prompt.num_digits or None,
            language=self._language(prompt.language),
            speech_timeout="auto" if "speech" in inputs else None,
        )
        self._say(gather, prompt.text, prompt.language)
        response.redirect(action, method="POST")
        return response

    async def _goodbye(self, call_id: str, text: str, language: str = "") -> VoiceResponse:
        """Say `text` and hang up; the call ends here (CALLER_HANGUP, attempt 0: no offer was bridged)."""
        response = VoiceResponse()
        self._say(response, text, language)
        response.hangup()
        await self._report(call_id, pb.CALL_OUTCOME_CALLER_HANGUP, 0)
        return response

    async def _report(self, call_id: str, outcome: pb.CallOutcome, seconds: int) -> None:
        try:
            await self.desk.report_outcome(cc.ReportOutcomeRequest(call_id=call_id, outcome=outcome, connected_seconds=seconds))
        except CallError as exc:  # the call is over for the CPaaS anyway; the desk's TTL forgets it
            log.warning(
                "twiml_report_failed",
                call_id=call_id,
                outcome=pb.CallOutcome.Name(outcome),
                code=exc.code.name,
                error=exc.message,
            )

    def _steps(self, call_id: str) -> int:
        """Answers the call's flow has taken so far: the `step` a <Gather> action carries."""
        return self.desk.flow_steps(call_id)

    async def _routing(self, request: web.Request, call_id: str, poll: int) -> VoiceResponse:
        """The call's routing decision as TwiML, waiting at most twiml_route_wait_s for one."""
        wait_s = self.settings.twiml_route_wait_s
        result = await self.desk.await_routing(cc.AwaitRoutingRequest(call_id=call_id, timeout_ms=max(1, int(wait_s * 1000))))
        if result.status == cc.ROUTING_STATUS_REJECTED:
            return await self._goodbye(call_id, result.announcement)
        response = VoiceResponse()
        if result.status == cc.ROUTING_STATUS_ROUTED:
            self.dialing.setdefault(call_id, asyncio.Event())
            dial = response.dial(
                action=self.url(request, DIAL, attempt=result.attempt), method="POST", timeout=self.settings.twiml_dial_timeout_s
            )
            if result.destination.startswith(("sip:", "sips:")):
                dial.sip(result.destination)
            else:
                dial.number(result.destination)
            log.info("twiml_dial", call_id=call_id, attempt=result.attempt, buyer_id=result.buyer_id, agent_id=result.agent_id)
            return response
        if result.status == cc.ROUTING_STATUS_WAITING:
            return self._hold_loop(request, call_id, result, poll)
        # PENDING: answer now and have the CPaaS ask again; the hold message now and then, not on every poll.
        repeat = self.settings.twiml_hold_repeat_s
        if poll == 0 or int(poll * wait_s // repeat) > int((poll - 1) * wait_s // repeat):
            self._say(response, self.settings.twiml_hold_message)
        response.redirect(self.url(request, ROUTE, poll=poll + 1), method="POST")
        return response

    def _hold_loop(self, request: web.Request, call_id: str, result: cc.RoutingResult, poll: int) -> VoiceResponse:
        """A call waiting in an ACD queue: say its place and wait (with a callback offer: a one-key <Gather>),
        hold (<Play> twiml_hold_url or <Pause>), then poll again."""
        language = self.desk.call_language(call_id)
        response = VoiceResponse()
        if result.callback_offered:
            gather = response.gather(
                input="dtmf speech",
                num_digits=1,
                action=self.url(request, ACCEPT, poll=poll + 1),
                method="POST",
                timeout=self.settings.twiml_gather_timeout_s,
                language=self._language(language),
                speech_timeout="auto",
            )
            self._say(gather, result.announcement, language)
        else:
            self._say(response, result.announcement, language)
        if self.settings.twiml_hold_url:
            response.play(self.settings.twiml_hold_url)
        else:
            response.pause(length=self.settings.twiml_hold_pause_s)
        response.redirect(self.url(request, ROUTE, poll=poll + 1), method="POST")
        return response

    async def _flow_end(self, request: web.Request, prompt: cc.IvrPrompt) -> VoiceResponse:
        if not prompt.qualified:
            result = await self.desk.await_routing(cc.AwaitRoutingRequest(call_id=prompt.call_id, timeout_ms=1))  # the rejection
            text = result.announcement if result.status == cc.ROUTING_STATUS_REJECTED else prompt.text
            return await self._goodbye(prompt.call_id, text or self.settings.disqualified_announcement, prompt.language)
        # Qualified: the router is already at work; say the end text while it decides, then ask for the decision.
        response = VoiceResponse()
        self._say(response, prompt.text, prompt.language)
        response.redirect(self.url(request, ROUTE, poll=0), method="POST")
        return response

    # -- routes --------------------------------------------------------------------------------------
    async def voice(self, request: web.Request, form: Form) -> VoiceResponse:
        call_id = form["CallSid"]
        if self.desk.has_ended(call_id):
            raise CallError(grpc.StatusCode.NOT_FOUND, f"call {call_id} already ended")  # a retry after the end: <Hangup/>
        start = await self.desk.start_call(
            cc.StartCallRequest(call_id=call_id, caller_number=form.get("From", ""), dialed_number=form.get("To", "")),
            edge=EDGE,
        )
        if not start.accepted:
            return await self._goodbye(call_id, start.announcement)
        if start.ivr_flow:
            if start.prompt.finished:  # a flow without questions
                return await self._flow_end(request, start.prompt)
            return self._gather(request, start.prompt, self._steps(call_id))
        if not self.desk.answers_complete(call_id):  # not on a retried request
            await self.desk.submit_answers(cc.SubmitAnswersRequest(call_id=call_id, complete=True))
        return await self._routing(request, call_id, 0)

    async def gather(self, request: web.Request, form: Form) -> VoiceResponse:
        call_id = form["CallSid"]
        step = _int(request.query.get("step"), -1)
        if step != self._steps(call_id):  # a retried (or late) request: the caller hears what is current now
            prompt = await self.desk.next_prompt(call_id)
            log.info("twiml_gather_repeat", call_id=call_id, step=step, node=prompt.node)
        else:
            if "SpeechResult" in form:
                kind, text = cc.INPUT_KIND_SPEECH, form["SpeechResult"]
            else:  # Digits, or nothing at all (the <Gather> timed out): an empty answer is invalid
                kind, text = cc.INPUT_KIND_DIGITS, form.get("Digits", "")
            prompt = await self.desk.submit_input(cc.SubmitInputRequest(call_id=call_id, kind=kind, input=text))
        if prompt.finished:
            return await self._flow_end(request, prompt)
        return self._gather(request, prompt, self._steps(call_id))

    async def route(self, request: web.Request, form: Form) -> VoiceResponse:
        return await self._routing(request, form["CallSid"], max(0, _int(request.query.get("poll"))))

    async def dial(self, request: web.Request, form: Form) -> VoiceResponse:
        call_id = form["CallSid"]
        attempt = _int(request.query.get("attempt"))
        outcome, seconds = dial_outcome(
            form.get("DialCallStatus", ""), form.get("CallStatus", ""), _int(form.get("DialCallDuration"))
        )
        report = cc.ReportOutcomeRequest(call_id=call_id, outcome=outcome, connected_seconds=seconds)
        if not self.desk.is_live(call_id):
            # Ended already: the desk answers a retry of the final report from its memory of ended calls; anything
            # else is NOT_FOUND (silent <Hangup/> for a call that ended here, the spoken error for one never seen).
            await self.desk.report_outcome(report)
        else:
            current = await self.desk.await_routing(cc.AwaitRoutingRequest(call_id=call_id, timeout_ms=1))
            if current.status == cc.ROUTING_STATUS_ROUTED and current.attempt == attempt:
                log.info(
                    "twiml_dial_ended",
                    call_id=call_id,
                    attempt=attempt,
                    outcome=pb.CallOutcome.Name(outcome),
                    seconds=seconds,
                    dial_status=form.get("DialCallStatus", ""),
                )
                await self.desk.report_outcome(report)
                self._dial_reported(call_id)
            else:  # offer `attempt` was reported already (a CPaaS retry): report nothing again
                log.info("twiml_dial_repeat", call_id=call_id, attempt=attempt, current=current.attempt)
        if not self.desk.is_live(call_id) or form.get("CallStatus", "") in CALL_OVER:
            response = VoiceResponse()
            response.hangup()
            return response
        return await self._routing(request, call_id, 0)  # re-routable: the next offer (or the rejection)

    def _dial_reported(self, call_id: str) -> None:
        done = self.dialing.pop(call_id, None)
        if done is not None:
            done.set()

    async def status(self, request: web.Request, form: Form) -> None:
        call_id = form["CallSid"]
        if form.get("CallStatus", "") not in CALL_OVER:
            return
        dialing = self.dialing.get(call_id)
        if dialing is not None:
            # The caller hung up during a <Dial>: its action (with the talk time) reports the offer; wait for it a little.
            try:
                await asyncio.wait_for(dialing.wait(), self.settings.twiml_dial_grace_s)
            except TimeoutError:
                log.info("twiml_dial_action_missing", call_id=call_id)
            self.dialing.pop(call_id, None)
        elif self.desk.offer_outstanding(call_id) and not await self.desk.until_no_offer(
            call_id, self.settings.twiml_dial_grace_s
        ):
            # A <Dial> of this call may run on another instance (or on this one before a restart): its dial action
            # would have reported the offer with the talk time, its end reaching this instance through ivr.calls.
            log.info("twiml_dial_action_missing", call_id=call_id)
        if self.desk.is_live(call_id):
            log.info("twiml_caller_hung_up", call_id=call_id, call_status=form.get("CallStatus", ""))
            await self._report(call_id, pb.CALL_OUTCOME_CALLER_HANGUP, 0)

    # -- callbacks (docs/TWIML.md "Waiting callers and callbacks") -----------------------------------
    async def accept(self, request: web.Request, form: Form) -> VoiceResponse:
        """The callback offer's <Gather>: 1 or "yes" → RequestCallback, <Say> the confirmation, <Hangup/>."""
        call_id = form["CallSid"]
        poll = max(0, _int(request.query.get("poll")))
        if "SpeechResult" in form:
            yes = flows.yes_no(form["SpeechResult"], "speech") == "yes"
        else:
            yes = form.get("Digits", "").strip() == "1"
        if not yes:
            return await self._routing(request, call_id, poll)  # any other key: the caller keeps waiting
        try:
            accepted = await self.desk.request_callback(cc.RequestCallbackRequest(call_id=call_id))
        except CallError as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            # Routed (or the offer withdrawn) meanwhile: the caller goes on to what the call has now.
            log.info("twiml_callback_not_taken", call_id=call_id, reason=exc.message)
            return await self._routing(request, call_id, poll)
        response = VoiceResponse()
        self._say(response, accepted.announcement, self.desk.call_language(call_id))
        response.hangup()  # no ReportOutcome: the call waits on virtual hold for its callback
        log.info("twiml_callback_accepted", call_id=call_id)
        return response

    def _placement(self, request: web.Request) -> cc.CallbackPlacement | None:
        """The callback the outbound leg's URL names (?call=&attempt=), if it is still the one to place."""
        placement = self.desk.current_placement(request.query.get("call", ""))
        if placement is None or placement.attempt != _int(request.query.get("attempt")):
            return None
        return placement

    async def callback_answered(self, request: web.Request, form: Form) -> VoiceResponse:
        """The caller answered the callback: <Say> callback_answered, <Dial> the reserved agent."""
        response = VoiceResponse()
        placement = self._placement(request)
        if placement is None:  # reported already (a CPaaS retry) or the call ended
            response.hangup()
            return response
        self._say(response, placement.announcement, placement.language)
        self.dialing.setdefault(placement.call_id, asyncio.Event())
        dial = response.dial(
            action=self.url(request, CALLBACK_DIAL, call=placement.call_id, attempt=placement.attempt),
            method="POST",
            timeout=self.settings.twiml_dial_timeout_s,
        )
        if placement.destination.startswith(("sip:", "sips:")):
            dial.sip(placement.destination)
        else:
            dial.number(placement.destination)
        log.info("twiml_callback_dial", call_id=placement.call_id, attempt=placement.attempt, agent_id=placement.agent_id)
        return response

    async def callback_dial(self, request: web.Request, form: Form) -> VoiceResponse:
        """The <Dial> action of the callback leg: its outcome → ReportOutcome of the call (as /twiml/dial)."""
        placement = self._placement(request)
        if placement is not None:
            outcome, seconds = dial_outcome(
                form.get("DialCallStatus", ""), form.get("CallStatus", ""), _int(form.get("DialCallDuration"))
            )
            log.info("twiml_callback_dial_ended", call_id=placement.call_id, outcome=pb.CallOutcome.Name(outcome))
            await self._report(placement.call_id, outcome, seconds)
            self._dial_reported(placement.call_id)
        response = VoiceResponse()
        response.hangup()
        return response

    async def callback_status(self, request: web.Request, form: Form) -> None:
        """The callback leg's status callback: not answered → CALLBACK_NO_ANSWER (the queue tries again later)."""
        call_status = form.get("CallStatus", "")
        placement = self._placement(request)
        if placement is None or call_status not in CALL_OVER:
            return
        if call_status != "completed":
            await self._report(placement.call_id, pb.CALL_OUTCOME_CALLBACK_NO_ANSWER, 0)
            return
        # Answered and over: the <Dial> action reports the bridged call; without one the caller hung up first.
        dialing = self.dialing.get(placement.call_id)
        if dialing is not None:
            try:
                await asyncio.wait_for(dialing.wait(), self.settings.twiml_dial_grace_s)
            except TimeoutError:
                log.info("twiml_dial_action_missing", call_id=placement.call_id)
            self.dialing.pop(placement.call_id, None)
        if self._placement(request) is not None:
            await self._report(placement.call_id, pb.CALL_OUTCOME_CALLER_HANGUP, 0)
