"""Who may talk to the gRPC edge (docs/IVR.md, "Securing the gRPC edge").

* TLS: `grpc_tls_cert_file` + `grpc_tls_key_file` make the CallControl port a TLS port.
* Client credentials, either or both:
  - a bearer token per edge client (`authorization: Bearer <token>` metadata), from
    `grpc_tokens` (JSON `{"client-name": "token"}`) and/or `grpc_tokens_file`; checked by
    `TokenInterceptor` in constant time, before any handler runs;
  - mTLS: `grpc_tls_client_ca_file` makes the TLS handshake require a client certificate
    signed by that CA (a handshake cannot exempt single methods: then every client presents one).
* Unauthenticated calls get UNAUTHENTICATED and reach no handler, so they start nothing.
  `grpc.health.v1.Health/*` passes without a token (probes and load balancers carry none).
* Plaintext, or no client credential, only with `grpc_insecure=true` (local development:
  `make run` and the tests); otherwise the ivr refuses to start and says what to set.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

import grpc
import structlog
import yaml
from pydantic import SecretStr

from switchboard.core.config import ConfigError
from switchboard.services.ivr.settings import IvrSettings

log = structlog.get_logger(__name__)

AUTHORIZATION = "authorization"  # gRPC metadata keys are lower case
BEARER = "bearer "
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/",)  # the OPS contract: health needs no credential


def load_tokens(settings: IvrSettings) -> dict[str, SecretStr]:
    """Client name → token: the file first, then SWITCHBOARD_IVR_GRPC_TOKENS on top. ConfigError on a bad file."""
    tokens: dict[str, SecretStr] = {}
    path = settings.grpc_tokens_file
    if path is not None:
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(
                [f"SWITCHBOARD_IVR_GRPC_TOKENS_FILE={path}: {exc} (a JSON or YAML mapping client name → token)"]
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError([f"SWITCHBOARD_IVR_GRPC_TOKENS_FILE={path}: expected a mapping client name → token"])
        tokens.update({str(k): SecretStr(str(v)) for k, v in data.items()})
    tokens.update(settings.grpc_tokens)
    short = sorted(name for name, t in tokens.items() if len(t.get_secret_value()) < 16)
    if short:
        raise ConfigError(
            [f"SWITCHBOARD_IVR_GRPC_TOKENS: the tokens of {short} are shorter than 16 characters (use random ones)"]
        )
    return tokens


def check_settings(settings: IvrSettings, tokens: Mapping[str, SecretStr]) -> list[str]:
    """Refuse an edge open to strangers unless grpc_insecure says so; the warnings to log when it does."""
    problems: list[str] = []
    if (settings.grpc_tls_cert_file is None) != (settings.grpc_tls_key_file is None):
        problems.append(
            "SWITCHBOARD_IVR_GRPC_TLS_CERT_FILE and SWITCHBOARD_IVR_GRPC_TLS_KEY_FILE: set both (PEM files) or neither"
        )
    for name in ("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_client_ca_file"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            problems.append(f"SWITCHBOARD_IVR_{name.upper()}={path}: no such file (mount it, or fix the path)")
    tls = settings.grpc_tls_cert_file is not None
    if settings.grpc_tls_client_ca_file is not None and not tls:
        problems.append(
            "SWITCHBOARD_IVR_GRPC_TLS_CLIENT_CA_FILE needs TLS: set SWITCHBOARD_IVR_GRPC_TLS_CERT_FILE and _KEY_FILE too"
        )
    if problems:
        raise ConfigError(problems)
    credential = bool(tokens) or settings.grpc_tls_client_ca_file is not None
    warnings = []
    if not tls:
        warnings.append("plaintext (no SWITCHBOARD_IVR_GRPC_TLS_CERT_FILE / _KEY_FILE)")
    if not credential:
        warnings.append("no client credential (no SWITCHBOARD_IVR_GRPC_TOKENS / _TOKENS_FILE / _TLS_CLIENT_CA_FILE)")
    if warnings and not settings.grpc_insecure:
        raise ConfigError(
            [
                f"the gRPC edge would serve {' and '.join(warnings)}: anyone who reaches the port could start calls. "
                "Set the TLS certificate and key and a client credential (docs/IVR.md, 'Securing the gRPC edge'), "
                "or SWITCHBOARD_IVR_GRPC_INSECURE=true for local development"
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


def _read(path: Path) -> bytes:
    return path.read_bytes()


def checked_tokens(settings: IvrSettings) -> dict[str, SecretStr]:
    """The edge clients' tokens, once the security settings are checked (ConfigError: refuse to start)."""
    tokens = load_tokens(settings)
    for warning in check_settings(settings, tokens):
        log.warning("grpc_edge_insecure", problem=warning, hint="SWITCHBOARD_IVR_GRPC_INSECURE=true: local development only")
    return tokens


def server(tokens: Mapping[str, SecretStr]) -> grpc.aio.Server:
    """The CallControl server with the client credential check (call `add_port` after adding the services)."""
    interceptors = [TokenInterceptor(tokens)] if tokens else []
    return grpc.aio.server(interceptors=interceptors)


def add_port(server: grpc.aio.Server, settings: IvrSettings) -> int:
    """Bind the CallControl address: TLS (and mTLS) when configured, else plaintext (allowed by check_settings)."""
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
        return server.add_insecure_port(address)
    ca = settings.grpc_tls_client_ca_file
    credentials = grpc.ssl_server_credentials(
        [(_read(settings.grpc_tls_key_file), _read(settings.grpc_tls_cert_file))],
        root_certificates=_read(ca) if ca is not None else None,
        require_client_auth=ca is not None,
    )
    return server.add_secure_port(address, credentials)
