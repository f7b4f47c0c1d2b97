"""Who may talk to a gRPC server of ours: TLS, mTLS and bearer tokens, one rule for every server.

Two servers use it: the ivr's CallControl edge (SWITCHBOARD_IVR_GRPC_*, docs/IVR.md "Securing the
gRPC edge") and the queue's AgentDesk (SWITCHBOARD_QUEUE_DESK_*, docs/ACD.md "Securing AgentDesk").
Each service maps its settings onto a `GrpcServerSecurity` (its env prefix names the variables in
every message); everything else is here:

* TLS: the cert file + key file make the port a TLS port.
* Client credentials, either or both:
  - a bearer token per client (`authorization: Bearer <token>` metadata), from `tokens` (JSON
    `{"client-name": "token"}`) and/or `tokens_file`; checked by `TokenInterceptor` in constant
    time, before any handler runs;
  - mTLS: the client CA file makes the TLS handshake require a client certificate signed by that
    CA (a handshake cannot exempt single methods: then every client presents one).
* Unauthenticated calls get UNAUTHENTICATED and reach no handler, so they change nothing.
  `grpc.health.v1.Health/*` passes without a token (probes and load balancers carry none).
* Plaintext, or no client credential, only with `insecure` (local development: `make run` and the
  tests); otherwise the service refuses to start and says what to set.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog
import yaml
from pydantic import SecretStr

from switchboard.core.config import ConfigError

log = structlog.get_logger(__name__)

AUTHORIZATION = "authorization"  # gRPC metadata keys are lower case
BEARER = "bearer "
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/",)  # the OPS contract: health needs no credential
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class GrpcServerSecurity:
    """One gRPC server's address and security settings, as a service's settings give them."""

    name: str  # "the gRPC edge", "AgentDesk": the subject of the refusal message
    env_prefix: str  # e.g. "SWITCHBOARD_IVR_GRPC_": + "TLS_CERT_FILE" is the variable a message names
    exposure: str  # what a stranger could do on an open port ("start calls")
    doc: str  # where the settings are documented
    host: str
    port: int
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    tokens: Mapping[str, SecretStr] = field(default_factory=dict)
    tokens_file: Path | None = None
    insecure: bool = False

    def env(self, key: str) -> str:
        return f"{self.env_prefix}{key.upper()}"

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None


def load_tokens(sec: GrpcServerSecurity) -> dict[str, SecretStr]:
    """Client name → token: the file first, then the tokens variable on top. ConfigError on a bad file."""
    tokens: dict[str, SecretStr] = {}
    path = sec.tokens_file
    if path is not None:
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError([f"{sec.env('tokens_file')}={path}: {exc} (a JSON or YAML mapping client name → token)"]) from exc
        if not isinstance(data, dict):
            raise ConfigError([f"{sec.env('tokens_file')}={path}: expected a mapping client name → token"])
        tokens.update({str(k): SecretStr(str(v)) for k, v in data.items()})
    tokens.update(sec.tokens)
    short = sorted(name for name, t in tokens.items() if len(t.get_secret_value()) < MIN_TOKEN_CHARS)
    if short:
        raise ConfigError(
            [f"{sec.env('tokens')}: the tokens of {short} are shorter than {MIN_TOKEN_CHARS} characters (use random ones)"]
        )
    return tokens


def check(sec: GrpcServerSecurity, tokens: Mapping[str, SecretStr]) -> list[str]:
    """Refuse a server open to strangers unless `insecure` says so; the warnings to log when it does."""
    problems: list[str] = []
    if (sec.tls_cert_file is None) != (sec.tls_key_file is None):
        problems.append(f"{sec.env('tls_cert_file')} and {sec.env('tls_key_file')}: set both (PEM files) or neither")
    for key in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        path = getattr(sec, key)
        if path is not None and not path.is_file():
            problems.append(f"{sec.env(key)}={path}: no such file (mount it, or fix the path)")
    if sec.tls_client_ca_file is not None and sec.tls_cert_file is None:
        problems.append(f"{sec.env('tls_client_ca_file')} needs TLS: set {sec.env('tls_cert_file')} and _KEY_FILE too")
    if problems:
        raise ConfigError(problems)
    credential = bool(tokens) or sec.tls_client_ca_file is not None
    warnings = []
    if sec.tls_cert_file is None:
        warnings.append(f"plaintext (no {sec.env('tls_cert_file')} / _KEY_FILE)")
    if not credential:
        warnings.append(f"no client credential (no {sec.env('tokens')} / _TOKENS_FILE / _TLS_CLIENT_CA_FILE)")
    if warnings and not sec.insecure:
        raise ConfigError(
            [
                f"{sec.name} would serve {' and '.join(warnings)}: anyone who reaches the port could {sec.exposure}. "
                f"Set the TLS certificate and key and a client credential ({sec.doc}), "
                f"or {sec.env('insecure')}=true for local development"
            ]
        )
    return warnings


def _denied(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler | None:
    """A handler of the same kind as `handler` that only aborts UNAUTHENTICATED (so nothing of the method runs)."""
    if handler is None:
        return None  # unknown method: UNIMPLEMENTED as without the interceptor

    async def abort(_request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    kinds: Iterable[tuple[object, Callable[..., grpc.RpcMethodHandler]]] = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
    )
    make = next(m for behaviour, m in kinds if behaviour is not None)
    return make(abort, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through only with `authorization: Bearer <token>` of a configured client (health excepted)."""

    def __init__(self, tokens: Mapping[str, SecretStr]) -> None:
        self._tokens = [(name, t.get_secret_value().encode()) for name, t in tokens.items()]

    def client_of(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str | None, str]:
        """(client name, "") for a valid token; (None, why) otherwise. Compares against every token in constant time."""
        given = [v for k, v in metadata or () if k == AUTHORIZATION]
        if not given:
            return None, "missing"
        value = given[0].decode(errors="replace") if isinstance(given[0], bytes) else given[0]
        if not value.lower().startswith(BEARER):
            return None, "not a bearer token"
        offered = value[len(BEARER) :].strip().encode()
        found: str | None = None
        for name, token in self._tokens:  # no early exit: the time does not tell which token was close
            if hmac.compare_digest(offered, token):
                found = name
        return (found, "") if found is not None else (None, "unknown token")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(UNAUTHENTICATED_PREFIXES):
            return await continuation(handler_call_details)
        client, why = self.client_of(handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if client is None:
            log.warning("grpc_unauthenticated", method=method, reason=why)
            return _denied(handler, f"a valid 'authorization: Bearer <token>' is required ({why})")  # type: ignore[return-value]
        return handler


def checked_tokens(sec: GrpcServerSecurity) -> dict[str, SecretStr]:
    """The clients' tokens, once the security settings are checked (ConfigError: refuse to start)."""
    tokens = load_tokens(sec)
    for warning in check(sec, tokens):
        log.warning(
            "grpc_server_insecure", server=sec.name, problem=warning, hint=f"{sec.env('insecure')}=true: local development only"
        )
    return tokens


def server(tokens: Mapping[str, SecretStr]) -> grpc.aio.Server:
    """A gRPC server with the client credential check (call `add_port` after adding the services)."""
    interceptors = [TokenInterceptor(tokens)] if tokens else []
    return grpc.aio.server(interceptors=interceptors)


def add_port(server: grpc.aio.Server, sec: GrpcServerSecurity) -> int:
    """Bind the address: TLS (and mTLS) when configured, else plaintext (allowed by `check`)."""
    address = f"{sec.host}:{sec.port}"
    if sec.tls_cert_file is None or sec.tls_key_file is None:
        return server.add_insecure_port(address)
    ca = sec.tls_client_ca_file
    credentials = grpc.ssl_server_credentials(
        [(sec.tls_key_file.read_bytes(), sec.tls_cert_file.read_bytes())],
        root_certificates=ca.read_bytes() if ca is not None else None,
        require_client_auth=ca is not None,
    )
    return server.add_secure_port(address, credentials)
