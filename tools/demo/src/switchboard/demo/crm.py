"""The demo CRM: an HTTP receiver of cti's signed webhooks (docs/CTI.md; docs/CONFIG.md#crm_endpoints).

`python -m switchboard.demo.crm [--host 127.0.0.1] [--port 0] [--secret-env SWITCHBOARD_DEMO_CRM_SECRET]`

What an integrator's receiver does, in a few lines:

* `POST /hooks`: verify the delivery with `standardwebhooks.Webhook(secret).verify(body, headers)`
  (401 when the signature, the id or the timestamp does not check out), dedupe by `webhook-id` (a
  redelivery carries the same id: answered 200 again, counted once), then log one line per delivery:
  its type, call id, webhook-id and the caller's earlier calls (`data.history`), never the caller number.
* `GET /stats`: the counts (`CrmCounts`) the live view of `switchboard run` shows.

The secret comes from the environment variable `--secret-env` names, never from the command line
(which `ps` shows). `switchboard.stack` starts it when a `crm_endpoints` url points at
`${SWITCHBOARD_DEMO_CRM:-...}`, with a fresh `whsec_` secret per run; it binds loopback on a free
port and writes the ready file crm.ready with http_port, serves until SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
from collections import OrderedDict
from collections.abc import Mapping

import structlog
from aiohttp import web
from google.protobuf import json_format
from pydantic import BaseModel
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from switchboard.platform.lifecycle import mark_ready, run_service
from switchboard.platform.logging import configure_logging
from switchboard.platform.settings import LogSettings
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("crm")

# The routing config interpolates the receiver's address from this variable (examples/demo.yaml).
DEMO_CRM_ENV = "SWITCHBOARD_DEMO_CRM"
# The variable the demo's crm_endpoints name as secret_env, and the one this receiver reads by default.
DEMO_CRM_SECRET_ENV = "SWITCHBOARD_DEMO_CRM_SECRET"
HOOK_PATH = "/hooks"
READY_NAME = "crm"
# webhook-ids remembered for dedup: far more than a demo run delivers, bounded so a long run stays small.
DEDUPE_CAPACITY = 100_000


def new_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class LastPop(BaseModel):
    """The latest screen pop (call.routed) of a repeat caller: the call and how many earlier calls came with it."""

    call_id: str
    earlier: int


class CrmCounts(BaseModel):
    deliveries: int = 0  # verified deliveries, each webhook-id once
    duplicates: int = 0  # verified deliveries of a webhook-id already received
    bad_signatures: int = 0  # refused with 401
    pops_with_history: int = 0  # call.routed deliveries whose data.history lists earlier calls
    last_pop: LastPop | None = None


class CrmReceiver:
    """Verifies, dedupes, counts and logs deliveries; `receive` answers each with an HTTP status."""

    def __init__(self, secret: str, dedupe_capacity: int = DEDUPE_CAPACITY) -> None:
        self.webhook = Webhook(secret)
        self.counts = CrmCounts()
        self.dedupe_capacity = dedupe_capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def receive(self, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            payload = self.webhook.verify(body, dict(headers))
        except WebhookVerificationError as exc:
            self.counts.bad_signatures += 1
            # The library's messages name the check that failed ("No matching signature found", ...), not the secret.
            log.warning("crm_bad_signature", reason=str(exc))
            return 401
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]  # verify() refused it when missing
        if webhook_id in self._seen:
            self._seen.move_to_end(webhook_id)
            self.counts.duplicates += 1
            log.info("crm_duplicate", webhook_id=webhook_id)
            return 200  # delivered before: a 2xx, or the sender would retry it
        try:
            kind = str(payload["type"])
            event = json_format.ParseDict(payload["data"], pb.CtiEvent(), ignore_unknown_fields=True)
        except (KeyError, TypeError, json_format.ParseError) as exc:
            log.warning("crm_unreadable_delivery", webhook_id=webhook_id, reason=str(exc)[:200])
            return 400
        self._seen[webhook_id] = None
        if len(self._seen) > self.dedupe_capacity:
            self._seen.popitem(last=False)
        self.counts.deliveries += 1
        earlier = [p.call_id for p in event.history]
        if kind == "call.routed" and earlier:
            self.counts.pops_with_history += 1
            self.counts.last_pop = LastPop(call_id=event.call_id, earlier=len(earlier))
        # Ids and counts only: the event's caller (number, area) stays out of the log.
        log.info("crm_delivery", type=kind, call_id=event.call_id, webhook_id=webhook_id, earlier_calls=earlier)
        return 204


def http_app(receiver: CrmReceiver) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=receiver.receive(body, request.headers))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(text=receiver.counts.model_dump_json())

    app = web.Application()
    app.router.add_post(HOOK_PATH, hook)
    app.router.add_get("/stats", stats)
    return app


async def serve_receiver(receiver: CrmReceiver, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the HTTP server; the runner (to clean up) and the port it listens on."""
    runner = web.AppRunner(http_app(receiver), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m switchboard.demo.crm", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port (in the ready file)")
    p.add_argument("--secret-env", default=DEMO_CRM_SECRET_ENV, help="variable holding the whsec_ secret")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(LogSettings(), service="crm")
    secret = os.environ.get(args.secret_env, "").strip()
    try:
        receiver = CrmReceiver(secret)
    except (ValueError, EmptyWebhookSecretError):  # the library's message could quote the value: ours names the variable
        print(
            f"environment variable {args.secret_env} does not hold a Standard Webhooks secret "
            "(set it to whsec_ followed by base64, the secret cti signs with)",
            file=sys.stderr,
        )
        sys.exit(2)

    async def serve(stop: asyncio.Event) -> None:
        runner, port = await serve_receiver(receiver, args.host, args.port)
        try:
            log.info("serving", host=args.host, http_port=port, path=HOOK_PATH)
            mark_ready(READY_NAME, http_port=port, host=args.host)
            await stop.wait()
        finally:
            await runner.cleanup()
            log.info("stopped", **receiver.counts.model_dump(exclude={"last_pop"}))

    run_service(serve)


if __name__ == "__main__":
    main()
