from pathlib import Path

import pytest
from typer.testing import CliRunner

from switchboard.cli import app
from switchboard.core.config import ConfigError, load_config

MINIMAL = """
version: 1
publishers: [{id: pub, min_price: 10.00}]
buyers:
  - {id: b1, destination: "+18005550100", bid: {type: static, price: 40.00}}
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: pub
    routing: {tiers: [{strategy: price, buyers: [b1]}]}
"""


def test_demo_config_loads(demo_config_path: Path):
    cfg = load_config(demo_config_path)
    assert cfg.campaign_for_number("+18885550123").id == "solar-ca"
    assert str(cfg.buyer("acme-solar").bid.price) == "40.00"


def test_directory_of_files_is_merged(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text('buyers: [{id: b2, destination: "+18005550101", bid: {type: static, price: 1.00}}]\n')
    cfg = load_config(tmp_path)
    assert [b.id for b in cfg.buyers] == ["b1", "b2"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (("strategy: price", "strategy: cheapest"), "campaigns.0.routing.tiers.0.strategy"),
        (("buyers: [b1]}", "buyers: [nobody]}"), "unknown buyer 'nobody'"),
        (("price: 40.00", "price: -5.00"), "buyers.0.bid.static.price"),
        (("publisher: pub", "publisher: ghost"), "unknown publisher 'ghost'"),
        (('destination: "+18005550100"', 'destination: "call me"'), "E.164"),
    ],
)
def test_invalid_config_names_file_field_and_fix(tmp_path: Path, patch, expected):
    f = tmp_path / "bad.yaml"
    f.write_text(MINIMAL.replace(*patch))
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = "\n".join(err.value.problems)
    assert str(f) in text and expected in text


def test_cli_validate_exit_codes(tmp_path: Path, demo_config_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "validate", str(demo_config_path)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("weight", "x").replace("buyers: [b1]}", "buyers: [nobody]}"))
    res = runner.invoke(app, ["config", "validate", str(bad)])
    assert res.exit_code == 1
    assert "unknown buyer 'nobody'" in res.output
