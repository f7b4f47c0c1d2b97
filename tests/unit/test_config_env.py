"""Environment-variable interpolation in string values of the routing config: ${NAME} and ${NAME:-default}."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.core.config import ConfigError
from switchboard.platform.configfile import check_config, load_config

CONFIG = """\
version: 1
buyers:
  - id: rtb-one
    name: "RTB ${WHO:-nobody}"
    destination: "+18005550100"
    bid: {type: rtb, url: "http://${SIM_HTTP:-127.0.0.1:9100}/ping/rtb-one", timeout_ms: 500}
  - id: static-one
    destination: "+18005550101"
    bid: {type: static, price: 20.00}
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: p1
    routing:
      tiers:
        - strategy: price
          buyers: [rtb-one, static-one]
publishers:
  - id: p1
"""


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "routing.yaml"
    f.write_text(text)
    return f


def test_defaults_apply_when_unset(tmp_path: Path):
    cfg = load_config(write(tmp_path, CONFIG), env={})
    assert cfg.buyer("rtb-one").bid.url == "http://127.0.0.1:9100/ping/rtb-one"
    assert cfg.buyer("rtb-one").name == "RTB nobody"


def test_values_come_from_env(tmp_path: Path):
    cfg = load_config(write(tmp_path, CONFIG), env={"SIM_HTTP": "127.0.0.1:4242", "WHO": "Acme"})
    assert cfg.buyer("rtb-one").bid.url == "http://127.0.0.1:4242/ping/rtb-one"
    assert cfg.buyer("rtb-one").name == "RTB Acme"


def test_os_environ_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIM_HTTP", "127.0.0.1:5555")
    cfg = load_config(write(tmp_path, CONFIG))
    assert cfg.buyer("rtb-one").bid.url == "http://127.0.0.1:5555/ping/rtb-one"


def test_empty_default_and_empty_value(tmp_path: Path):
    text = CONFIG.replace("RTB ${WHO:-nobody}", "RTB${WHO:-}")
    assert load_config(write(tmp_path, text), env={}).buyer("rtb-one").name == "RTB"
    assert load_config(write(tmp_path, text), env={"WHO": ""}).buyer("rtb-one").name == "RTB"


def test_undefined_without_default_is_a_problem_with_its_line(tmp_path: Path):
    text = CONFIG.replace("${SIM_HTTP:-127.0.0.1:9100}", "${SIM_HTTP}").replace("${WHO:-nobody}", "${WHO}")
    f = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(f, env={})
    assert exc.value.problems == [
        f"{f}:4: buyers.0.name: environment variable WHO is not set (set it, or give a default: ${{WHO:-value}})",
        f"{f}:6: buyers.0.bid.url: environment variable SIM_HTTP is not set (set it, or give a default: ${{SIM_HTTP:-value}})",
    ]


def test_substituted_value_is_validated_like_written_text(tmp_path: Path):
    f = write(tmp_path, CONFIG)
    cfg, problems = check_config(f, env={"SIM_HTTP": ""})  # url becomes "http:///ping/rtb-one": no host
    assert cfg is None
    assert len(problems) == 1 and problems[0].path == "buyers.0.bid.url" and problems[0].line == 6
    assert "must be an http://, https://, grpc:// or grpcs:// URL with a host" in problems[0].message


def test_result_stays_text_and_keys_are_not_substituted(tmp_path: Path):
    text = CONFIG.replace('destination: "+18005550101"', 'destination: "${DEST}"')
    cfg = load_config(write(tmp_path, text), env={"DEST": "+18005550199"})
    assert cfg.buyer("static-one").destination == "+18005550199"
    bad_key = CONFIG.replace("  - id: p1\n", "  - id: p1\n    ${X}: 1\n")
    cfg, problems = check_config(write(tmp_path, bad_key), env={"X": "name"})
    assert cfg is None and problems[0].path == "publishers.0.${X}"


def test_escape_and_plain_dollars(tmp_path: Path):
    text = CONFIG.replace("RTB ${WHO:-nobody}", "costs $5 $$ and $${WHO}")
    assert load_config(write(tmp_path, text), env={"WHO": "x"}).buyer("rtb-one").name == "costs $5 $$ and ${WHO}"


def test_malformed_reference_is_a_problem(tmp_path: Path):
    f = write(tmp_path, CONFIG.replace("RTB ${WHO:-nobody}", "RTB ${1WHO}"))
    _, problems = check_config(f, env={})
    assert [(p.line, p.path) for p in problems] == [(4, "buyers.0.name")]
    assert "malformed variable reference" in problems[0].message


def test_demo_config_resolves_buyersim_addresses(demo_config_path: Path):
    env = {"SWITCHBOARD_BUYERSIM_HTTP": "127.0.0.1:1111", "SWITCHBOARD_BUYERSIM_GRPC": "127.0.0.1:2222"}
    rtb = [b.bid.url for b in load_config(demo_config_path, env=env).buyers if b.bid.type == "rtb"]
    assert rtb and all("127.0.0.1:1111" in u or "127.0.0.1:2222" in u for u in rtb)
    assert any(u.startswith("grpc://") for u in rtb)
    assert load_config(demo_config_path, env={})  # the defaults alone make a valid config


def test_aliased_values_are_substituted_once(tmp_path: Path):
    text = CONFIG.replace('name: "RTB ${WHO:-nobody}"', 'name: &n "RTB $${WHO} ${WHO}"').replace(
        "  - id: p1\n", "  - id: p1\n    name: *n\n"
    )
    cfg = load_config(write(tmp_path, text), env={"WHO": "x"})
    assert cfg.buyer("rtb-one").name == "RTB ${WHO} x"
    assert cfg.publisher("p1").name == "RTB ${WHO} x"
