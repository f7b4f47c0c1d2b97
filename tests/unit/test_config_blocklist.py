"""Blocklists (global and per campaign) and allow_invalid_numbers in the routing config."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.platform.configfile import check_config

HEAD = """version: 1
publishers: [{id: p}]
buyers: [{id: b, destination: "+18005550100", bid: {type: static, price: 10}}]
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(HEAD + body)
    return path


def campaign(extra: str = "") -> str:
    return f"""campaigns:
  - id: c
    numbers: ["+18885550123"]
    publisher: p
{extra}    routing: {{tiers: [{{strategy: price, buyers: [b]}}]}}
"""


def test_defaults_empty_lists_and_invalid_numbers_refused(tmp_path):
    cfg, problems = check_config(write(tmp_path, campaign()))
    assert problems == []
    assert cfg.blocklist.numbers == cfg.blocklist.prefixes == cfg.blocklist.area_codes == []
    assert cfg.campaigns[0].allow_invalid_numbers is False
    assert cfg.campaigns[0].blocklist.numbers == []


def test_global_and_campaign_blocklists_load(tmp_path):
    body = 'blocklist: {numbers: ["+12135550000"], prefixes: ["+1900"], area_codes: ["976"]}\n' + campaign(
        '    allow_invalid_numbers: true\n    blocklist: {area_codes: ["213"], prefixes: ["+44"]}\n'
    )
    cfg, problems = check_config(write(tmp_path, body))
    assert problems == []
    assert (cfg.blocklist.numbers, cfg.blocklist.prefixes, cfg.blocklist.area_codes) == (["+12135550000"], ["+1900"], ["976"])
    c = cfg.campaigns[0]
    assert (c.allow_invalid_numbers, c.blocklist.area_codes, c.blocklist.prefixes) == (True, ["213"], ["+44"])


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ('{numbers: ["213-555-0000"]}', "blocklist.numbers.0", "is not an E.164 number"),
        ("{numbers: [+12135550000]}", "blocklist.numbers.0", "was read as a number (put it in quotes"),
        ('{prefixes: ["1900"]}', "blocklist.prefixes.0", "is not a number prefix"),
        ('{prefixes: ["+1 900"]}', "blocklist.prefixes.0", "is not a number prefix"),
        ("{prefixes: [+1900]}", "blocklist.prefixes.0", "was read as a number (put it in quotes"),
        ('{area_codes: ["90"]}', "blocklist.area_codes.0", "is not a three-digit area code"),
        ("{area_codes: [900]}", "blocklist.area_codes.0", "put it in quotes"),
        ('{phones: ["+12135550000"]}', "blocklist.phones", "unknown field"),
    ],
)
def test_global_blocklist_problems(tmp_path, entry, path, message):
    cfg, problems = check_config(write(tmp_path, f"blocklist: {entry}\n" + campaign()))
    assert cfg is None
    [p] = problems
    assert (p.line, p.path) == (4, path) and message in p.message and p.message.endswith(")")
    assert str(p).startswith(f"{tmp_path / 'routing.yaml'}:4: {path}: ")


def test_campaign_blocklist_and_flag_problems_point_at_their_lines(tmp_path):
    body = campaign('    allow_invalid_numbers: maybe\n    blocklist:\n      area_codes: ["2133"]\n      prefixes: ["x"]\n')
    _, problems = check_config(write(tmp_path, body))
    got = {(p.line, p.path) for p in problems}
    assert got == {
        (8, "campaigns.0.allow_invalid_numbers"),
        (10, "campaigns.0.blocklist.area_codes.0"),
        (11, "campaigns.0.blocklist.prefixes.0"),
    }, problems
    assert all(p.message.endswith(")") for p in problems)
