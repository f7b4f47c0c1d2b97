"""Outbound callbacks of TwiML calls: the ivr asks the CPaaS REST API to call the caller back (docs/TWIML.md).

A caller of the TwiML webhook who accepted a callback hung up; when the queue reserves an agent
(call.routed with callback_attempt > 0) the desk has a CallbackPlacement for the call. This placer
takes the placements of TwiML calls this instance holds (CallDesk.watch_callbacks, edge "twiml")
and creates the outbound call with the `twilio` library (Calls create, Basic auth with the account
sid and token) at `twilio_api_base_url`:

  to              the caller's number
  from_           the tracking number the caller dialed (the caller id the caller knows)
  url             <public>/twiml/callback/answered?call=<call id>&attempt=<offer>: the caller answered →
                  <Say> callback_answered, <Dial> the reserved agent (twiml.py)
  status_callback <public>/twiml/callback/status?call=<call id>&attempt=<offer>: no-answer, busy, failed
                  → ReportOutcome CALL_OUTCOME_CALLBACK_NO_ANSWER (the queue tries again later)

A create the API refuses (or that cannot reach it) is reported CALLBACK_NO_ANSWER too: the caller was
not reached, and the queue's retry schedule (callback_retries) is the one place that decides what next.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import structlog
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from switchboard.services.ivr.desk import CallDesk, CallError
from switchboard.services.ivr.metrics import OUTBOUND_CALLS
from switchboard.services.ivr.settings import IvrSettings
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

EDGE = "twiml"
TWILIO_API = "https://api.twilio.com"
ANSWERED, CALL_STATUS = "/twiml/callback/answered", "/twiml/callback/status"


class BaseUrlHttpClient(AsyncTwilioHttpClient):
    """The twilio library's async HTTP client, sending to `base_url` instead of api.twilio.com.

    Its request and response logs are off: they carry the form (To: the caller's number) and the reply.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        return await super().request(method, url, *args, **kwargs)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        pass

    def log_response(self, status_code: int, response: Any) -> None:
        pass


class OutboundCallbacks:
    """Places the callbacks of this instance's TwiML calls through the CPaaS REST API until stopped."""

    def __init__(self, desk: CallDesk, settings: IvrSettings) -> None:
        self.desk = desk
        self.settings = settings
        token = settings.twilio_api_auth_token or settings.twiml_auth_token
        self.http = BaseUrlHttpClient(settings.twilio_api_base_url, settings.twilio_api_timeout_s)
        self.client = Client(settings.twilio_account_sid, token.get_secret_value() if token else "", http_client=self.http)
        self._calls: set[asyncio.Task[None]] = set()

    def url(self, path: str, placement: cc.CallbackPlacement) -> str:
        query = urlencode({"call": placement.call_id, "attempt": placement.attempt})
        return f"{self.settings.twiml_public_base_url}{path}?{query}"

    async def run(self, stop: asyncio.Event) -> None:
        """Take placements until `stop`; each one's create runs on its own (a slow API holds up no other caller)."""
        reader = asyncio.create_task(self._read())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()  # the reader ends only by an error: raise it (the service fails loudly)
        finally:
            stopping.cancel()
            for task in [reader, *self._calls]:
                task.cancel()
            await asyncio.gather(reader, *self._calls, return_exceptions=True)
            await self.http.close()

    async def _read(self) -> None:
        async for placement in self.desk.watch_callbacks(frozenset({EDGE})):
            task = asyncio.create_task(self.place(placement))
            self._calls.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._calls.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # As in place(): an exception's text can quote the caller's number, so only its type is logged.
            log.error("outbound_callback_failed", error=type(task.exception()).__name__)

    async def place(self, placement: cc.CallbackPlacement) -> None:
        """Create the outbound call; a refused create is reported CALLBACK_NO_ANSWER (the queue retries)."""
        try:
            created = await self.client.calls.create_async(
                to=placement.caller_number,
                from_=placement.dialed_number,
                url=self.url(ANSWERED, placement),
                method="POST",
                status_callback=self.url(CALL_STATUS, placement),
                status_callback_method="POST",
                status_callback_event=["completed"],
                timeout=self.settings.twiml_dial_timeout_s,
            )
        except (TimeoutError, TwilioException, OSError) as exc:
            OUTBOUND_CALLS.labels("failed").inc()
            # The exception text can quote the request (the caller's number): only its type is logged.
            log.warning(
                "outbound_callback_refused",
                call_id=placement.call_id,
                attempt=placement.attempt,
                error=type(exc).__name__,
                status=getattr(exc, "status", None),
            )
            try:
                await self.desk.report_outcome(
                    cc.ReportOutcomeRequest(call_id=placement.call_id, outcome=pb.CALL_OUTCOME_CALLBACK_NO_ANSWER)
                )
            except CallError as err:
                log.warning("outbound_report_failed", call_id=placement.call_id, code=err.code.name, error=err.message)
            return
        OUTBOUND_CALLS.labels("created").inc()
        log.info("outbound_callback_created", call_id=placement.call_id, attempt=placement.attempt, sid=created.sid)
