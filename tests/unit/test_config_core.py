"""The configuration package of the pure core: validation without files, and no file or YAML access."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from switchboard.core.config import FieldPath, RoutingConfig, config_problems


def _data(publisher: str = "p1", **buyer: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "publishers": [{"id": "p1"}],
        "buyers": [{"id": "b1", "destination": "+18005550100", "bid": {"type": "static", "price": "40.00"}, **buyer}],
        "campaigns": [
            {
                "id": "c1",
                "numbers": ["+18885550123"],
                "publisher": publisher,
                "routing": {"tiers": [{"strategy": "price", "buyers": ["b1"]}]},
            }
        ],
    }


def _at(lines: dict[FieldPath, int]) -> Any:
    return lambda path: ("routing.yaml", lines.get(tuple(path)))


def test_config_problems_validates_raw_data() -> None:
    config, problems = config_problems(_data(), _at({}))
    assert problems == []
    assert isinstance(config, RoutingConfig) and config.campaign("c1").publisher == "p1"


def test_config_problems_reports_shape_and_reference_problems_where_the_caller_locates_them() -> None:
    data = _data(publisher="p2", wieght=2)
    config, problems = config_problems(data, _at({("buyers", 0, "wieght"): 7, ("campaigns", 0, "publisher"): 12}))
    assert config is None
    assert [str(p) for p in problems] == [
        "routing.yaml:7: buyers.0.wieght: unknown field; did you mean weight? (rename it to weight)",
        "routing.yaml:12: campaigns.0.publisher: unknown publisher 'p2' (define it under publishers, or use an existing publisher id)",
    ]


def test_core_loads_no_yaml() -> None:
    """Reading files is switchboard.platform.configfile's job: importing the whole core leaves yaml unloaded."""
    code = (
        "import sys\n"
        "import switchboard.core.config, switchboard.core.engine, switchboard.core.acd, switchboard.core.ivr\n"
        "import switchboard.core.screening, switchboard.core.caller\n"
        "print('yaml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
