"""Calls RTB buyers over HTTP(S) and gRPC and turns whatever happens into an `Answer`.

One pooled httpx.AsyncClient serves every http(s) buyer (TLS verification on);
grpc.aio channels are cached per target: plaintext for grpc://, TLS for grpcs:// (verified against
`tls_ca_file` when set, else the system's CAs, as for https). `Pinger.ping()` never raises for
anything a buyer does: errors become NO_BID with a stable reason code
(timeout, http_4xx, http_5xx, malformed, connection_refused, connection_error,
tls_error, grpc_<status>, unsigned), and the whole call is bounded by `timeout_s`.
A buyer with a secret must sign its answer (header / gRPC metadata) unless
`require_signed_answers` is off: an answer without a valid signature is `unsigned`.
`Pinger.post()` sends ping_post's post the same way (same pool, same signature,
same reasons) and turns any failure into a rejection.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from decimal import Decimal
from urllib.parse import urlsplit

import grpc
import httpx
import structlog
from google.protobuf.message import Message
from pydantic import SecretStr

from switchboard.core import reasons
from switchboard.platform import signing
from switchboard.services.bidder import protocol
from switchboard.services.bidder.protocol import Answer
from switchboard.services.bidder.settings import BidderSettings
from switchboard.v1 import bidding_pb2_grpc
from switchboard.v1 import events_pb2 as pb

log = structlog.get_logger("bidder.rtb")

GRPC_SCHEMES = ("grpc://", "grpcs://")
Asked = pb.PingRequested | pb.PostRequested  # what an answer answers: its call_id and auction_id sign it


class _TooLarge(Exception):
    pass


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts (httpx wraps the OS/SSL errors)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def classify_connect_error(exc: BaseException) -> str:
    chain = _chain(exc)
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return reasons.TLS_ERROR
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return reasons.CONNECTION_REFUSED
    text = " ".join(str(e) for e in chain).lower()
    if "certificate" in text or "ssl" in text or "tls" in text:
        return reasons.TLS_ERROR
    if "refused" in text:
        return reasons.CONNECTION_REFUSED
    return reasons.CONNECTION_ERROR


def _grpc_reason(code: grpc.StatusCode, details: str) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return reasons.TIMEOUT
    if code == grpc.StatusCode.UNAVAILABLE:
        text = (details or "").lower()
        if "refused" in text:
            return reasons.CONNECTION_REFUSED
        if "ssl" in text or "tls" in text or "handshake" in text:
            return reasons.TLS_ERROR
        return reasons.CONNECTION_ERROR
    return reasons.grpc_status(code.name)


async def _call_metadata(call: grpc.aio.UnaryUnaryCall) -> list[tuple[str, str | bytes]]:
    """Initial then trailing metadata of a finished call (a buyer may sign in either)."""
    initial = await call.initial_metadata()
    trailing = await call.trailing_metadata()
    return [(k, v) for md in (initial, trailing) if md for k, v in md]


class Pinger:
    """Owns the HTTP pool and the gRPC channels; start/stop inside the running loop."""

    def __init__(self, settings: BidderSettings, secrets: dict[str, SecretStr]) -> None:
        self.settings = settings
        self.secrets = secrets
        self.max_bid = Decimal(settings.max_bid)
        self._http: httpx.AsyncClient | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, bidding_pb2_grpc.BiddingStub] = {}
        self._grpc_credentials: grpc.ChannelCredentials | None = None

    async def start(self) -> None:
        s = self.settings
        verify: ssl.SSLContext | bool = True
        if s.tls_ca_file is not None:
            verify = ssl.create_default_context(cafile=str(s.tls_ca_file))
        self._http = httpx.AsyncClient(
            verify=verify,
            follow_redirects=False,  # a redirect is an answer we do not understand: http_3xx
            trust_env=False,  # never route pings through an environment proxy
            limits=httpx.Limits(
                max_connections=s.http_max_connections,
                max_keepalive_connections=s.http_max_keepalive,
                keepalive_expiry=s.http_keepalive_expiry_s,
            ),
            headers={"User-Agent": "switchboard-bidder/1", "Content-Type": "application/json"},
        )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        await asyncio.gather(*(c.close(None) for c in channels), return_exceptions=True)  # no grace (grpc's default)

    def _secret(self, buyer_id: str) -> str | None:
        s = self.secrets.get(buyer_id)
        return s.get_secret_value() if s is not None else None

    def _unsigned(self, buyer_id: str, header: str | None, body: bytes, ask: Asked) -> tuple[str, str] | None:
        """("unsigned", detail) when this buyer's answer must be signed and `header` does not sign `body` as the
        answer to `ask` (its call and auction: an answer replayed from another auction does not verify)."""
        secret = self._secret(buyer_id)
        if secret is None or not self.settings.require_signed_answers:
            return None
        problem = signing.answer_signature_problem(
            secret, header, body, ask.call_id, ask.auction_id, self.settings.answer_signature_tolerance_s
        )
        return None if problem is None else (reasons.UNSIGNED, problem)

    def _grpc_unsigned(
        self, buyer_id: str, metadata: list[tuple[str, str | bytes]], msg: Message, ask: Asked
    ) -> tuple[str, str] | None:
        """The gRPC form of `_unsigned`: the signature is in initial or trailing metadata, over the deterministic bytes."""
        if self._secret(buyer_id) is None or not self.settings.require_signed_answers:
            return None
        headers = [v for k, v in metadata if k == signing.GRPC_METADATA_KEY and isinstance(v, str)]
        body = msg.SerializeToString(deterministic=True)
        failure = self._unsigned(buyer_id, None, body, ask)  # no entry at all: "answer not signed"
        for h in headers:  # several entries: one valid signature is enough
            failure = self._unsigned(buyer_id, h, body, ask)
            if failure is None:
                break
        return failure

    async def ping(self, ping: pb.PingRequested, buyer_id: str, url: str, timeout_s: float) -> Answer:
        """Ask one buyer; at most `timeout_s` seconds; never raises for anything the buyer does."""
        if timeout_s <= 0:
            return Answer.no_bid(reasons.TIMEOUT, "no time left before the deadline")
        timeout_ms = max(1, int(timeout_s * 1000))
        try:
            async with asyncio.timeout(timeout_s):
                if url.startswith(GRPC_SCHEMES):
                    return await self._ping_grpc(ping, buyer_id, url, timeout_s, timeout_ms)
                return await self._ping_http(ping, buyer_id, url, timeout_s, timeout_ms)
        except TimeoutError:
            return Answer.no_bid(reasons.TIMEOUT, f"no answer within {timeout_ms} ms")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — a bug or a buyer we did not foresee: still only a no-bid
            log.warning("ping_failed_unexpectedly", buyer_id=buyer_id, error=f"{type(exc).__name__}: {exc}")
            return Answer.no_bid(reasons.CONNECTION_ERROR, type(exc).__name__)

    async def _ping_http(self, ping: pb.PingRequested, buyer_id: str, url: str, timeout_s: float, timeout_ms: int) -> Answer:
        failure, raw = await self._http_exchange(
            buyer_id, url, protocol.ping_json(ping, buyer_id, timeout_ms), timeout_s, timeout_ms, ping
        )
        if failure is not None:
            return Answer.no_bid(*failure)
        return protocol.parse_json_answer(raw, self.max_bid)

    async def _http_exchange(
        self, buyer_id: str, url: str, body: bytes, timeout_s: float, timeout_ms: int, ask: Asked
    ) -> tuple[tuple[str, str] | None, bytes]:
        """POST a signed body: (None, 2xx body) or ((reason, detail), b"") — the reasons of BUYER_API.md section 3."""
        assert self._http is not None, "Pinger.start() first"
        headers = {}
        secret = self._secret(buyer_id)
        if secret is not None:
            headers[signing.HEADER] = signing.sign(secret, body)
        try:
            async with self._http.stream("POST", url, content=body, headers=headers, timeout=timeout_s) as resp:
                raw = await self._read_capped(resp)
        except httpx.TimeoutException:
            return (reasons.TIMEOUT, f"no answer within {timeout_ms} ms"), b""
        except _TooLarge:
            return (reasons.MALFORMED, f"answer longer than {self.settings.max_response_bytes} bytes"), b""
        except httpx.ConnectError as exc:
            return (classify_connect_error(exc), str(exc)[:200]), b""
        except httpx.HTTPError as exc:  # reset, closed without an answer, protocol errors
            reason = classify_connect_error(exc)
            return (
                reasons.CONNECTION_ERROR if reason == reasons.CONNECTION_REFUSED else reason,
                f"{type(exc).__name__}: {exc}"[:200],
            ), b""
        except ssl.SSLError as exc:
            return (reasons.TLS_ERROR, str(exc)[:200]), b""
        except OSError as exc:
            return (classify_connect_error(exc), str(exc)[:200]), b""
        status = resp.status_code
        if 200 <= status < 300:
            unsigned = self._unsigned(buyer_id, resp.headers.get(signing.HEADER), raw, ask)
            if unsigned is not None:
                return unsigned, b""
            return None, raw
        return (reasons.http_status(status), f"HTTP {status}"), b""

    # ------------------------------------------------------------ the post (ping_post)

    async def post(self, post: pb.PostRequested, url: str, timeout_s: float) -> protocol.PostResult:
        """Post the call to the auction's winner; any failure is a rejection with our reason. Never raises."""
        if timeout_s <= 0:
            return protocol.PostResult.failed(reasons.TIMEOUT, "no time left before the post deadline")
        timeout_ms = max(1, int(timeout_s * 1000))
        try:
            async with asyncio.timeout(timeout_s):
                if url.startswith(GRPC_SCHEMES):
                    return await self._post_grpc(post, url, timeout_s, timeout_ms)
                failure, raw = await self._http_exchange(
                    post.buyer_id, url, protocol.post_json(post, timeout_ms), timeout_s, timeout_ms, post
                )
                if failure is not None:
                    return protocol.PostResult.failed(*failure)
                return protocol.parse_json_post_answer(raw)
        except TimeoutError:
            return protocol.PostResult.failed(reasons.TIMEOUT, f"no answer within {timeout_ms} ms")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — still only a rejection
            log.warning("post_failed_unexpectedly", buyer_id=post.buyer_id, error=f"{type(exc).__name__}: {exc}")
            return protocol.PostResult.failed(reasons.CONNECTION_ERROR, type(exc).__name__)

    async def _post_grpc(self, post: pb.PostRequested, url: str, timeout_s: float, timeout_ms: int) -> protocol.PostResult:
        req = protocol.post_proto(post, timeout_ms)
        metadata = []
        secret = self._secret(post.buyer_id)
        if secret is not None:
            metadata.append((signing.GRPC_METADATA_KEY, signing.sign(secret, req.SerializeToString(deterministic=True))))
        try:
            call = self._stub(url).Post(req, timeout=timeout_s, metadata=metadata)
            resp = await call
            answer_md = await _call_metadata(call)
        except grpc.aio.AioRpcError as exc:
            return protocol.PostResult.failed(
                _grpc_reason(exc.code(), exc.details() or ""), f"{exc.code().name}: {exc.details()}"[:200]
            )
        unsigned = self._grpc_unsigned(post.buyer_id, answer_md, resp, post)
        if unsigned is not None:
            return protocol.PostResult.failed(*unsigned)
        return protocol.parse_proto_post_answer(resp)

    async def _read_capped(self, resp: httpx.Response) -> bytes:
        limit = self.settings.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _stub(self, url: str) -> bidding_pb2_grpc.BiddingStub:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"  # the same host in plaintext and over TLS are two channels
        stub = self._stubs.get(key)
        if stub is None:
            opts = [("grpc.max_receive_message_length", self.settings.max_response_bytes)]
            if parts.scheme == "grpcs":
                channel = grpc.aio.secure_channel(parts.netloc, self._grpc_tls(), options=opts)
            else:
                channel = grpc.aio.insecure_channel(parts.netloc, options=opts)
            self._channels[key] = channel
            stub = self._stubs[key] = bidding_pb2_grpc.BiddingStub(channel)
        return stub

    def _grpc_tls(self) -> grpc.ChannelCredentials:
        """TLS for grpcs:// buyers: the configured CA bundle, else gRPC's default roots (the system's)."""
        if self._grpc_credentials is None:
            ca = self.settings.tls_ca_file
            self._grpc_credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes() if ca is not None else None)
        return self._grpc_credentials

    async def _ping_grpc(self, ping: pb.PingRequested, buyer_id: str, url: str, timeout_s: float, timeout_ms: int) -> Answer:
        req = protocol.ping_proto(ping, buyer_id, timeout_ms)
        metadata = []
        secret = self._secret(buyer_id)
        if secret is not None:
            # Deterministic serialization: the buyer re-serializes what it parsed and gets the same bytes.
            metadata.append((signing.GRPC_METADATA_KEY, signing.sign(secret, req.SerializeToString(deterministic=True))))
        try:
            call = self._stub(url).Ping(req, timeout=timeout_s, metadata=metadata)
            resp = await call
            answer_md = await _call_metadata(call)
        except grpc.aio.AioRpcError as exc:
            return Answer.no_bid(_grpc_reason(exc.code(), exc.details() or ""), f"{exc.code().name}: {exc.details()}"[:200])
        unsigned = self._grpc_unsigned(buyer_id, answer_md, resp, ping)
        if unsigned is not None:
            return Answer.no_bid(*unsigned)
        return protocol.parse_proto_answer(resp, self.max_bid)
