"""Hostile configuration files are refused before anything walks them: alias bombs and huge files."""

from __future__ import annotations

from pathlib import Path

from switchboard.platform import configfile
from switchboard.platform.configfile import check_config

BILLION_LAUGHS = """\
version: 1
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
buyers: [*i, *i, *i, *i, *i, *i, *i, *i, *i]
"""


def test_billion_laughs_is_refused_with_the_line_of_the_first_alias(tmp_path: Path):
    f = tmp_path / "bomb.yaml"
    f.write_text(BILLION_LAUGHS)
    config, problems = check_config(f)
    assert config is None
    assert len(problems) == 1
    line = str(problems[0])
    assert line.startswith(f"{f}:3: (yaml): aliases expand the document to more than {configfile.MAX_ALIAS_EXPANSION} nodes")
    assert line.endswith("(a YAML alias bomb?): write the repeated parts out, or use fewer nested aliases")
    assert problems[0].line == 3 and problems[0].path == "(yaml)"


def test_a_recursive_alias_is_refused(tmp_path: Path):
    f = tmp_path / "loop.yaml"
    f.write_text("version: 1\nbuyers: &x [*x]\n")
    _, problems = check_config(f)
    assert len(problems) == 1
    assert "a recursive alias" in problems[0].message and problems[0].line == 2


def test_ordinary_aliases_still_work(tmp_path: Path):
    """A few shared blocks (the reason YAML has aliases) are far below the bound and load as before."""
    f = tmp_path / "ok.yaml"
    f.write_text(
        """\
version: 1
buyers:
  - id: b1
    destination: "+18005550100"
    bid: &bid {type: static, price: 20.00}
  - id: b2
    destination: "+18005550101"
    bid: *bid
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: p1
    routing: {tiers: [{strategy: price, buyers: [b1, b2]}]}
publishers:
  - id: p1
"""
    )
    config, problems = check_config(f)
    assert problems == []
    assert config is not None and [b.id for b in config.buyers] == ["b1", "b2"]


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path: Path, monkeypatch):
    f = tmp_path / "huge.yaml"
    f.write_text("version: 1\n" + "# padding\n" * 200)
    monkeypatch.setattr(configfile, "MAX_CONFIG_BYTES", 1000)
    _, problems = check_config(f)
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{f}: (file): {f.stat().st_size} bytes is more than the 1000 a configuration file")
