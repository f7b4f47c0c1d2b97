"""cti's HTTP API for CRMs: write a disposition back for a call (docs/CTI.md, "Dispositions").

    POST /v1/calls/{call_id}/disposition
    Authorization: Bearer <token>
    {"disposition": "sale", "note": "annual plan", "fields": {"crm_id": "0031x00000AbCd"}}

→ 202 {"event_id": ..., "call_id": ...} once the write-back is on call.dispositions (acks=all): cti's
consumer folds it into the caller's history like every other event (one decision path), and the
analytics sink stores it. 401 without a valid token (platform.tokens), 404 for a call cti does not
know (never seen, or its history expired), 400 for a body that is not the JSON above (the message
says which field), 503 while the broker refuses the write (retry later: nothing was written).

Off unless SWITCHBOARD_CTI_API_ENABLED; then it needs tokens (SWITCHBOARD_CTI_API_TOKENS or
_API_TOKENS_FILE): a write-back changes what agents and CRMs see, so nobody writes anonymously.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from aiohttp import web
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from switchboard.core.config import ConfigError
from switchboard.platform import codec, tokens
from switchboard.platform.kafka import EventBus
from switchboard.platform.topics import CALL_DISPOSITIONS
from switchboard.services.cti.settings import CtiSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024


class DispositionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disposition: str = Field("", max_length=100, description="the CRM's code; '' keeps the current one")
    note: str = Field("", max_length=2000)
    fields: dict[str, str] = Field(default_factory=dict, max_length=100)


def api_tokens(settings: CtiSettings) -> dict[str, SecretStr]:
    """The API's clients, checked (ConfigError: refuse to start): an enabled API without tokens is refused."""
    clients = tokens.load_tokens(
        settings.api_tokens,
        settings.api_tokens_file,
        tokens_env="SWITCHBOARD_CTI_API_TOKENS",
        file_env="SWITCHBOARD_CTI_API_TOKENS_FILE",
    )
    if settings.api_enabled and not clients:
        raise ConfigError(
            [
                "SWITCHBOARD_CTI_API_ENABLED needs client tokens: set SWITCHBOARD_CTI_API_TOKENS "
                '(JSON {"crm-name": "<16+ characters>"}) or SWITCHBOARD_CTI_API_TOKENS_FILE (docs/CTI.md, "Dispositions")'
            ]
        )
    return clients


class CtiApi:
    def __init__(
        self, settings: CtiSettings, clients: Mapping[str, SecretStr], bus: EventBus, knows_call: Callable[[str], bool]
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.knows_call = knows_call
        self.clients = tokens.BearerTokens(clients)  # from api_tokens(settings), checked before cti connected
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/calls/{call_id}/disposition", self.disposition)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.api_host, self.settings.api_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def disposition(self, request: web.Request) -> web.Response:
        client, why = self.clients.client_of(request.headers.getall("Authorization", []))
        if client is None:
            log.warning("api_unauthenticated", path=request.path, reason=why)
            return _error(401, f"a valid 'Authorization: Bearer <token>' is required ({why})")
        call_id = request.match_info["call_id"]
        try:
            body = DispositionBody.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"{where}: {first['msg']} (send JSON {{'disposition', 'note', 'fields'}})")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        if not body.disposition and not body.fields:
            return _error(400, "disposition or fields: nothing to write (send one of them)")
        if not self.knows_call(call_id):
            return _error(404, f"call {call_id} is not known to cti (never seen, or its caller history expired)")
        event = pb.CallDisposition(
            event_id=codec.new_id(),
            call_id=call_id,
            occurred_at=codec.now_ts(),
            disposition=body.disposition,
            note=body.note,
            fields=body.fields,
            source=client,
        )
        try:
            await self.bus.publish(CALL_DISPOSITIONS, event)
        except KafkaError as exc:
            log.warning("disposition_not_written", call_id=call_id, source=client, error=type(exc).__name__)
            return _error(503, "the event log refused the write; nothing was written, try again", retry_after="5")
        log.info("disposition_written", call_id=call_id, source=client, disposition=body.disposition, fields=len(body.fields))
        return web.json_response({"event_id": event.event_id, "call_id": call_id}, status=202)


def _error(status: int, message: str, retry_after: str | None = None) -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after else None
    return web.json_response({"error": message}, status=status, headers=headers)
