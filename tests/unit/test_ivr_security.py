"""The gRPC servers' credential checks (platform/grpcsecurity.py) without a server, through the edge's
settings (services/ivr/security.py) and AgentDesk's (services/queue/security.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from switchboard.core.config import ConfigError
from switchboard.platform.grpcsecurity import TokenInterceptor, check
from switchboard.platform.grpcsecurity import load_tokens as load
from switchboard.services.ivr.security import edge_security
from switchboard.services.ivr.settings import IvrSettings
from switchboard.services.queue.security import desk_security
from switchboard.services.queue.settings import QueueSettings


def load_tokens(settings: IvrSettings) -> dict[str, SecretStr]:
    return load(edge_security(settings))


def check_settings(settings: IvrSettings, tokens: dict[str, SecretStr]) -> list[str]:
    return check(edge_security(settings), tokens)


TOKENS = {"sip-edge": SecretStr("a" * 32), "twilio-edge": SecretStr("b" * 32)}


def test_a_configured_token_names_its_client_and_anything_else_is_refused():
    interceptor = TokenInterceptor(TOKENS)
    assert interceptor.client_of([("authorization", "Bearer " + "b" * 32)]) == ("twilio-edge", "")
    assert interceptor.client_of([("authorization", "bearer " + "a" * 32)]) == ("sip-edge", "")  # the scheme is case-blind
    assert interceptor.client_of([]) == (None, "missing")
    assert interceptor.client_of(None) == (None, "missing")
    assert interceptor.client_of([("authorization", "a" * 32)]) == (None, "not a bearer token")
    assert interceptor.client_of([("authorization", "Bearer " + "a" * 31)]) == (None, "unknown token")
    assert interceptor.client_of([("x-other", "Bearer " + "a" * 32)]) == (None, "missing")


def test_tokens_from_file_and_env_and_short_ones_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SWITCHBOARD_IVR_GRPC_TOKENS", raising=False)
    path = tmp_path / "tokens.yaml"
    path.write_text("from-file: " + "f" * 20 + "\n")
    settings = IvrSettings(grpc_tokens_file=path, grpc_tokens={"from-env": "e" * 20})
    assert {k: v.get_secret_value() for k, v in load_tokens(settings).items()} == {"from-file": "f" * 20, "from-env": "e" * 20}
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_tokens(IvrSettings(grpc_tokens={"weak": "secret"}))
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_tokens(IvrSettings(grpc_tokens_file=path))


def test_an_open_edge_needs_the_dev_flag(tmp_path: Path):
    with pytest.raises(ConfigError, match="SWITCHBOARD_IVR_GRPC_INSECURE=true"):
        check_settings(IvrSettings(grpc_insecure=False), TOKENS)  # tokens but plaintext
    assert check_settings(IvrSettings(grpc_insecure=True), {}) == [
        "plaintext (no SWITCHBOARD_IVR_GRPC_TLS_CERT_FILE / _KEY_FILE)",
        "no client credential (no SWITCHBOARD_IVR_GRPC_TOKENS / _TOKENS_FILE / _TLS_CLIENT_CA_FILE)",
    ]
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="set both"):
        check_settings(IvrSettings(grpc_insecure=True, grpc_tls_cert_file=cert), {})
    with pytest.raises(ConfigError, match="no such file"):
        check_settings(IvrSettings(grpc_tls_cert_file=cert, grpc_tls_key_file=tmp_path / "missing.key"), TOKENS)
    key = tmp_path / "k.pem"
    key.write_text("x")
    assert check_settings(IvrSettings(grpc_tls_cert_file=cert, grpc_tls_key_file=key), TOKENS) == []


def test_agent_desk_has_the_same_rule_under_its_own_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for var in ("TOKENS", "TOKENS_FILE", "INSECURE", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"):
        monkeypatch.delenv(f"SWITCHBOARD_QUEUE_DESK_{var}", raising=False)
    with pytest.raises(ConfigError, match=r"AgentDesk would serve plaintext .* SWITCHBOARD_QUEUE_DESK_INSECURE=true"):
        check(desk_security(QueueSettings()), {})  # the default refuses an open desk
    assert check(desk_security(QueueSettings(desk_insecure=True)), {}) == [
        "plaintext (no SWITCHBOARD_QUEUE_DESK_TLS_CERT_FILE / _KEY_FILE)",
        "no client credential (no SWITCHBOARD_QUEUE_DESK_TOKENS / _TOKENS_FILE / _TLS_CLIENT_CA_FILE)",
    ]
    path = tmp_path / "desk-tokens.json"
    path.write_text('{"agent-ui": "' + "d" * 24 + '"}')
    settings = QueueSettings(desk_tokens_file=path, desk_tokens={"wallboard": "w" * 16})
    assert sorted(load(desk_security(settings))) == ["agent-ui", "wallboard"]
    monkeypatch.setenv("SWITCHBOARD_QUEUE_DESK_TOKENS", '{"short": "abc"}')
    with pytest.raises(ConfigError, match="SWITCHBOARD_QUEUE_DESK_TOKENS: the tokens of \\['short'\\] are shorter"):
        load(desk_security(QueueSettings()))
