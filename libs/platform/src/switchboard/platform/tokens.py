"""Bearer tokens per client: loaded from a variable and a file, checked in constant time.

One rule for every server that lets clients in by token: the gRPC servers (platform.grpcsecurity:
CallControl, AgentDesk) and cti's HTTP API (services/cti/api.py). A token names its client (logs
and events say which client did what, never the token).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import SecretStr

from switchboard.core.config import ConfigError

BEARER = "bearer "
MIN_TOKEN_CHARS = 16


def load_tokens(
    tokens: Mapping[str, SecretStr], tokens_file: Path | None, *, tokens_env: str, file_env: str
) -> dict[str, SecretStr]:
    """Client name → token: the file first, then `tokens` on top. ConfigError on a bad file or a short token
    (`tokens_env` / `file_env` name the variables in the message)."""
    out: dict[str, SecretStr] = {}
    if tokens_file is not None:
        try:
            text = tokens_file.read_text()
            data = json.loads(text) if tokens_file.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError([f"{file_env}={tokens_file}: {exc} (a JSON or YAML mapping client name → token)"]) from exc
        if not isinstance(data, dict):
            raise ConfigError([f"{file_env}={tokens_file}: expected a mapping client name → token"])
        out.update({str(k): SecretStr(str(v)) for k, v in data.items()})
    out.update(tokens)
    short = sorted(name for name, t in out.items() if len(t.get_secret_value()) < MIN_TOKEN_CHARS)
    if short:
        raise ConfigError(
            [f"{tokens_env}: the tokens of {short} are shorter than {MIN_TOKEN_CHARS} characters (use random ones)"]
        )
    return out


class BearerTokens:
    """Which client an `Authorization: Bearer <token>` value belongs to."""

    def __init__(self, tokens: Mapping[str, SecretStr]) -> None:
        self._tokens = [(name, t.get_secret_value().encode()) for name, t in tokens.items()]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def client_of(self, values: Iterable[str | bytes]) -> tuple[str | None, str]:
        """(client name, "") for a valid token among the header `values` (the first counts); (None, why) otherwise.
        Compares against every token in constant time."""
        given = list(values)
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
