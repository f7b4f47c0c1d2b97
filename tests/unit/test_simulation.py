"""`switchboard simulate`: the simulator drives the routing core on a virtual clock (docs/SIMULATION.md)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from switchboard.cli import app
from switchboard.core.config import RoutingConfig
from switchboard.platform.configfile import check_config, load_config
from switchboard.platform.settings import DEMO_CONFIG
from switchboard.simulation import CallRecord, compare, run
from switchboard.simulation.stats import paired_interval, t_quantile

EXAMPLES = DEMO_CONFIG.parent
DEMO = EXAMPLES / "demo.yaml"
DEMO_ALT = EXAMPLES / "demo-alt.yaml"


def config(**sections: Any) -> RoutingConfig:
    """One publisher, one campaign; `sections` override or add top-level sections."""
    data: dict[str, Any] = {
        "publishers": [{"id": "pub", "min_price": "10.00"}],
        "buyers": [{"id": "b1", "destination": "+18005550100", "bid": {"type": "static", "price": "30.00"}}],
        "campaigns": [
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "price", "buyers": ["b1"]}]},
            }
        ],
    }
    data.update(sections)
    return RoutingConfig.model_validate(data)


def records(cfg: RoutingConfig, calls: int, seed: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out: list[CallRecord] = []
    tally = run(cfg, calls, seed, on_call=out.append)
    return tally.to_dict(), [r.to_dict() for r in out]


# ---------------------------------------------------------------- determinism


def test_same_seed_same_output_byte_for_byte(tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = []
    for name in ("a", "b"):
        calls_file = tmp_path / f"{name}.jsonl"
        res = runner.invoke(
            app, ["simulate", "--config", str(DEMO), "--calls", "400", "--seed", "7", "--json", "--out", str(calls_file)]
        )
        assert res.exit_code == 0, res.output
        outputs.append((res.stdout.encode(), calls_file.read_bytes()))
    assert outputs[0] == outputs[1]
    summary = json.loads(outputs[0][0])
    assert summary["calls"] == 400 and summary["seed"] == 7
    assert len(outputs[0][1].splitlines()) == 400
    other = runner.invoke(app, ["simulate", "--config", str(DEMO), "--calls", "400", "--seed", "8", "--json"])
    assert other.exit_code == 0
    assert json.loads(other.stdout)["revenue"] != summary["revenue"]


def test_same_seed_same_output_across_processes(tmp_path: Path) -> None:
    """Nothing depends on the process: not the wall clock, not Python's per-process string hashing."""
    outputs = []
    for hash_seed in ("1", "2"):
        calls_file = tmp_path / f"calls-{hash_seed}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "switchboard.cli",
            "simulate",
            "--config",
            str(DEMO),
            "--calls",
            "300",
            "--seed",
            "3",
            "--json",
            "--out",
            str(calls_file),
        ]
        done = subprocess.run(cmd, env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, check=True, timeout=120)
        outputs.append((done.stdout, calls_file.read_bytes()))
    assert outputs[0] == outputs[1]


def test_a_run_does_not_depend_on_recording_traces() -> None:
    cfg = load_config(DEMO)
    plain = run(cfg, 300, 3).to_dict()
    recorded, _ = records(cfg, 300, 3)
    assert plain == recorded


# ---------------------------------------------------------------- output


def test_summary_agrees_with_the_calls() -> None:
    summary, calls = records(load_config(DEMO), 1500, 2)
    assert [c["call"] for c in sorted(calls, key=lambda c: c["call"])] == list(range(1, 1501))
    kinds = {k: sum(1 for c in calls if c["outcome"]["kind"] == k) for k in ("buyer", "agent", "rejected")}
    assert summary["outcomes"] == kinds
    assert kinds["buyer"] > 0 and kinds["agent"] > 0 and kinds["rejected"] > 0, "the demo should show every outcome"
    sold = [c["outcome"] for c in calls if c["outcome"]["kind"] == "buyer"]
    billable = [o for o in sold if o["billable"]]
    assert Decimal(summary["revenue"]) == sum((Decimal(o["price"]) for o in billable), Decimal(0))
    assert summary["billable_sales"] == len(billable)
    assert summary["fill_rate"] == round(len(sold) / 1500, 6)
    assert Decimal(summary["avg_winning_bid"]) == (sum(Decimal(o["price"]) for o in sold) / len(sold)).quantize(Decimal("0.01"))
    for buyer_id, b in summary["buyers"].items():
        mine = [o for o in sold if o["buyer_id"] == buyer_id]
        assert b["connected"] == len(mine)
        assert Decimal(b["revenue"]) == sum((Decimal(o["price"]) for o in mine if o["billable"]), Decimal(0))
    rejected = [c["outcome"] for c in calls if c["outcome"]["kind"] == "rejected"]
    assert sum(summary["rejects_by_reason"].values()) == len(rejected)
    for reason, n in summary["rejects_by_reason"].items():
        assert n == sum(1 for o in rejected if o["reason"] == reason)


def test_each_call_carries_attributes_outcome_and_trace() -> None:
    _, calls = records(load_config(DEMO), 800, 4)
    before_routing = {"blocked", "invalid_number", "duplicate", "disqualified"}  # the ivr service's rejects
    seen_reasons = set()
    for c in calls:
        assert c["call_id"].startswith("sim-") and c["campaign_id"] in ("solar-ca", "auto-insurance")
        assert c["decided_at"] >= c["arrived_at"]
        o, trace = c["outcome"], c["trace"]
        seen_reasons.add(o["reason"])
        if o["reason"] in before_routing:
            # rejected by the ivr service: no routing decision, so no trace; decided as the call arrived
            assert o["kind"] == "rejected" and o["attempt"] == 0 and o["detail"]
            assert trace == {} and c["decided_at"] == c["arrived_at"]
            continue
        assert c["state"] and c["area_code"]  # routed callers have valid numbers: the demo refuses the others
        if c["campaign_id"] == "solar-ca":  # routed on its IVR flow's answers, the ZIP the caller keyed in
            assert (
                {"language", "homeowner", "monthly_bill"} <= set(c["answers"]) <= {"language", "homeowner", "zip", "monthly_bill"}
            )
            assert c["zip"] == c["answers"].get("zip", "")
        if o["kind"] == "buyer":
            # the trace's one winner is the buyer the call went to, at the outcome's tier and attempt
            winners = [e for e in trace["entries"] if e.get("winner")]
            assert [(e["target_id"], e.get("tier_index", 0)) for e in winners] == [(o["buyer_id"], o["tier"])]
            # protobuf's JSON mapping leaves out fields at their default (tier 0)
            assert (trace.get("winning_tier", 0), trace["winning_attempt"]) == (o["tier"], o["attempt"])
            assert Decimal(o["price"]) >= Decimal("10.00")  # the floor of both demo publishers
        elif o["kind"] == "agent":
            winners = [e for e in trace["entries"] if e.get("winner")]
            assert [(e["target_id"], e["kind"]) for e in winners] == [(o["agent_id"], "TARGET_KIND_AGENT")]
            assert o["queue_id"] == "inhouse-sales" and o["wait_s"] is not None
        else:
            assert o["reason"] and trace.get("winning_tier", -1) == -1
            assert any(n.startswith(("rejected:", "queue ")) for n in trace["notes"])
    assert before_routing <= seen_reasons, "the demo's callers include blocked, invalid, repeat and disqualified ones"


def test_cli_human_output_is_tables() -> None:
    res = CliRunner().invoke(app, ["simulate", "--config", str(DEMO), "--calls", "200"])
    assert res.exit_code == 0, res.output
    for text in ("revenue", "fill rate", "Buyers", "average winning bid", "Queues"):
        assert text in res.stdout


def test_a_config_without_simulation_section_simulates_on_defaults() -> None:
    cfg = config()
    assert cfg.simulation is None
    summary = run(cfg, 200, 1).to_dict()
    # defaults: 60 calls an hour, every buyer answers and converts
    assert summary["outcomes"] == {"buyer": 200, "agent": 0, "rejected": 0}
    assert summary["revenue"] == "6000.00"
    assert 40 < summary["clock"]["calls_per_hour"] < 80


# ---------------------------------------------------------------- the core decides, the simulator carries it out


def test_concurrency_cap_holds_across_overlapping_simulated_calls() -> None:
    cfg = config(
        buyers=[
            {"id": "b1", "destination": "+18005550100", "bid": {"type": "static", "price": "30.00"}, "caps": {"concurrency": 2}},
            {"id": "b2", "destination": "+18005550101", "bid": {"type": "static", "price": "20.00"}},
        ],
        campaigns=[
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "price", "buyers": ["b1", "b2"]}]},
            }
        ],
        simulation={
            "traffic": {"calls_per_hour": 120},
            "buyers": {"defaults": {"talk_time_s": {"type": "fixed", "value": 600}}},
        },
    )
    summary, calls = records(cfg, 400)
    spans = sorted((c["decided_at"], c["outcome"]["connected_s"]) for c in calls if c["outcome"]["buyer_id"] == "b1")
    ends: list[datetime] = []
    for at, seconds in spans:
        start = datetime.fromisoformat(at)
        ends = [e for e in ends if e > start] + [start + timedelta(seconds=seconds)]
        assert len(ends) <= 2, "b1 holds more calls than its concurrency cap"
    # 3.3 h of calls, 10 min each, 2 at a time: about 40 for b1, the rest to b2
    assert summary["buyers"]["b1"]["connected"] > 25 and summary["buyers"]["b2"]["connected"] > 300
    assert any(e.get("excluded_by") == "cap:concurrency" for c in calls for e in c["trace"]["entries"])


def test_weight_tier_shares_calls_by_weight() -> None:
    cfg = config(
        buyers=[
            {"id": "w3", "destination": "+18005550100", "bid": {"type": "static", "price": "30.00"}, "weight": 3},
            {"id": "w1", "destination": "+18005550101", "bid": {"type": "static", "price": "30.00"}, "weight": 1},
        ],
        campaigns=[
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "weight", "buyers": ["w3", "w1"]}]},
            }
        ],
    )
    summary = run(cfg, 401, 5).to_dict()
    assert abs(summary["buyers"]["w3"]["connected"] - 401 * 3 / 4) <= 1
    assert abs(summary["buyers"]["w1"]["connected"] - 401 / 4) <= 1


def test_rtb_answers_past_the_timeout_are_no_bids_and_unanswered_offers_are_rerouted() -> None:
    cfg = config(
        buyers=[
            {
                "id": "slow",
                "destination": "+18005550100",
                "bid": {"type": "rtb", "url": "http://127.0.0.1:9/ping", "timeout_ms": 200},
            },
            {"id": "shy", "destination": "+18005550101", "bid": {"type": "static", "price": "25.00"}},
            {"id": "last", "destination": "+18005550102", "bid": {"type": "static", "price": "15.00"}},
        ],
        campaigns=[
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"max_attempts": 2, "tiers": [{"strategy": "price", "buyers": ["slow", "shy", "last"]}]},
            }
        ],
        simulation={
            "buyers": {
                "slow": {"latency_ms": 500, "bid": 90},
                "shy": {"answer_rate": 0.0, "ring_s": 25},
            }
        },
    )
    summary, calls = records(cfg, 50)
    assert summary["buyers"]["last"]["connected"] == 50 and "slow" not in summary["buyers"]
    assert summary["offer_failures"] == {"no_answer": 50}
    for c in calls:
        slow = next(e for e in c["trace"]["entries"] if e["target_id"] == "slow")
        assert (slow["bid_outcome"], slow["bid_reason"], slow["bid_latency_ms"]) == ("BID_OUTCOME_NO_BID", "timeout", 200)
        assert c["outcome"]["attempt"] == 2
        # answered after shy rang 25 s and the 200 ms auction
        waited = datetime.fromisoformat(c["decided_at"]) - datetime.fromisoformat(c["arrived_at"])
        assert 25.2 <= waited.total_seconds() < 25.3


def test_ping_post_rejected_posts_go_to_the_next_bid() -> None:
    rtb = {"type": "rtb", "url": "http://127.0.0.1:9/ping", "timeout_ms": 500}
    cfg = config(
        buyers=[
            {"id": "hi", "destination": "+18005550100", "bid": rtb},
            {"id": "lo", "destination": "+18005550101", "bid": rtb},
        ],
        campaigns=[
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "ping_post", "buyers": ["hi", "lo"]}]},
            }
        ],
        simulation={"buyers": {"hi": {"bid": 50, "post_reject_rate": 1.0}, "lo": {"bid": 40}}},
    )
    summary = run(cfg, 100, 1).to_dict()
    assert summary["buyers"]["hi"] == {
        "offers": 0,
        "posts": 100,
        "connected": 0,
        "billable": 0,
        "revenue": "0.00",
        "avg_price": None,
    }
    assert summary["buyers"]["lo"]["connected"] == 100 and summary["avg_winning_bid"] == "40.00"
    assert summary["offer_failures"] == {"post_rejected": 100}


def test_queue_waits_and_abandonment() -> None:
    cfg = config(
        campaigns=[
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "queue", "queue": "q"}]},
            }
        ],
        queues=[{"id": "q", "max_wait_s": 30}],
        agents=[{"id": "solo", "queues": ["q"]}],
        simulation={
            "traffic": {"calls_per_hour": 60},
            "agents": {"solo": {"handle_time_s": 120}},
            "queues": {"q": {"patience_s": {"type": "exponential", "mean": 20}}},
        },
    )
    summary, calls = records(cfg, 300)
    q = summary["queues"]["q"]
    assert q["calls"] == 300 and q["answered"] + q["abandoned"] == 300
    assert q["abandoned_by"]["max_wait"] > 0 and q["abandoned_by"]["caller_hangup"] > 0
    assert summary["rejects_by_reason"] == {"abandoned": q["abandoned"]}
    for c in calls:
        o = c["outcome"]
        assert o["wait_s"] is not None and o["wait_s"] <= 30
        if o["kind"] == "agent":
            assert o["handle_s"] == 120
        elif "max_wait_s" in o["detail"]:
            assert o["wait_s"] == pytest.approx(30)
    # the clock ends with the last call (not at a timer of a call that was served long ago)
    clock = summary["clock"]
    assert 0 <= (datetime.fromisoformat(clock["end"]) - datetime.fromisoformat(clock["last_arrival"])).total_seconds() <= 30 + 120
    assert 0.5 < summary["agents"]["solo"]["occupancy"] <= 1
    # one agent busy 120 s per call, a call a minute: never two calls on it at once
    spans = sorted((c["decided_at"], c["outcome"]["handle_s"]) for c in calls if c["outcome"]["kind"] == "agent")
    for (a, handle), (b, _) in pairwise(spans):
        assert datetime.fromisoformat(a) + timedelta(seconds=handle) <= datetime.fromisoformat(b)


# ---------------------------------------------------------------- compare


def test_a_plan_compared_with_itself_differs_by_exactly_zero() -> None:
    cfg = load_config(DEMO)
    result = compare(cfg, cfg, 300, 3, seed=11).to_dict()
    d = result["difference_b_minus_a"]
    assert d["revenue"] == {"mean": "0.00", "ci95": ["0.00", "0.00"], "sd": "0.00", "significant": False}
    assert d["fill_rate"]["mean"] == 0 and result["same_traffic"] is True
    assert result["seeds"] == [11, 12, 13]
    assert result["a"]["revenue_by_run"] == result["b"]["revenue_by_run"]
    assert len(set(result["a"]["revenue_by_run"])) == 3, "each run has its own seed"


def test_compare_demo_plans_with_a_paired_t_interval() -> None:
    result = compare(DEMO, DEMO_ALT, 400, 4, seed=1)
    doc = result.to_dict("demo", "demo-alt")
    assert doc["same_traffic"] is True
    diffs = [float(Decimal(b) - Decimal(a)) for a, b in zip(doc["a"]["revenue_by_run"], doc["b"]["revenue_by_run"], strict=True)]
    interval = paired_interval(diffs)
    assert doc["difference_b_minus_a"]["revenue"]["ci95"] == [f"{interval.low:.2f}", f"{interval.high:.2f}"]
    # by hand: mean ± t(0.975, 3) · sd / √4 with t = 3.182
    half = 3.182 * statistics.stdev(diffs) / 2
    assert interval.low == pytest.approx(statistics.fmean(diffs) - half, abs=0.01 + 1e-3 * half)
    # same calls in both plans: plan B's higher floor leaves auto insurance calls unsold in every run
    fills = list(zip(doc["a"]["fill_rate_by_run"], doc["b"]["fill_rate_by_run"], strict=True))
    assert all(b < a for a, b in fills)
    assert doc["difference_b_minus_a"]["fill_rate"]["significant"] is True


def test_cli_compare(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", "--compare", str(DEMO), str(DEMO_ALT), "--calls", "200", "--runs", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc["difference_b_minus_a"]) == {"revenue", "fill_rate"}
    assert doc["a"]["config"] == str(DEMO) and doc["runs"] == 2
    human = runner.invoke(app, ["simulate", "--compare", str(DEMO), str(DEMO_ALT), "--calls", "200", "--runs", "2"])
    assert human.exit_code == 0 and "95% CI" in human.stdout
    assert runner.invoke(app, ["simulate", "--compare", str(DEMO), str(DEMO_ALT), "--runs", "1"]).exit_code != 0


@pytest.mark.parametrize(("df", "t"), [(1, 12.706), (2, 4.303), (3, 3.182), (9, 2.262), (10, 2.228), (30, 2.042), (120, 1.980)])
def test_t_quantile_matches_the_tables(df: int, t: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(t, abs=5e-4)


def test_demo_alt_is_the_demo_with_the_documented_change() -> None:
    demo, alt = load_config(DEMO).model_dump(), load_config(DEMO_ALT).model_dump()
    for cfg, floor in ((demo, "10.00"), (alt, "20.00")):
        publisher = next(p for p in cfg["publishers"] if p["id"] == "insure-clicks")
        assert publisher["min_price"] == Decimal(floor)
        publisher["min_price"] = None
    # ...and the tier the higher floor leaves dead (its buyers pay 12.00) is gone from plan B
    auto = next(c for c in demo["campaigns"] if c["id"] == "auto-insurance")
    dead = auto["routing"]["tiers"].pop()
    assert dead["strategy"] == "even" and dead["buyers"] == ["road-ready", "drive-safe"]
    assert demo == alt


# ---------------------------------------------------------------- validation


def assert_problems(found: list[str], expected: list[str]) -> None:
    """`found` is one problem per line of `expected` (each starting so), and every problem says how to fix it."""
    for line in expected:
        assert any(p.startswith(line) for p in found), f"missing {line!r} in:\n" + "\n".join(found)
    assert len(found) == len(expected), "\n".join(found)
    assert all(p.rstrip().endswith(")") for p in found), "every problem says how to fix it"


def refused(tmp_path: Path, text: str) -> list[str]:
    """The problems `check_config` finds in the config `text` (it must refuse it), without the file name."""
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    cfg, found = check_config(path)
    assert cfg is None
    return [str(p).replace(f"{path}:", "") for p in found]


def problems(tmp_path: Path, simulation: str) -> list[str]:
    return refused(
        tmp_path,
        "version: 1\n"
        "publishers: [{id: pub}]\n"
        "buyers:\n"
        '  - {id: b1, destination: "+18005550100", bid: {type: static, price: 10.00}}\n'
        "campaigns:\n"
        '  - {id: camp, numbers: ["+18885550123"], publisher: pub, routing: {tiers: [{strategy: price, buyers: [b1]}]}}\n'
        "simulation:\n" + simulation,
    )


def test_bad_simulation_sections_are_refused_with_line_field_and_fix(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "  timezone: Europe/Pariss\n"  # 8
        "  start: next monday\n"  # 9
        "  traffic:\n"  # 10
        "    campaigns:\n"  # 11
        "      camp: {calls_per_hour: 0}\n"  # 12
        "      cmap: {calls_per_hour: 5}\n"  # 13
        '    hourly_profile: {"08-20": 1, "19-22": 1, "9-": 1}\n'  # 14
        "    callers:\n"  # 15
        '      areas: [{state: CAL, area_code: "213"}]\n'  # 16
        "      answers:\n"  # 17
        "        homeowner: {yes: 2, no: -1}\n"  # 18
        "        bill: {mean: 200, sd: 50}\n"  # 19
        "        score: {type: uniform, min: 800, max: 500}\n"  # 20
        "  buyers:\n"  # 21
        "    defaults: {answer_rate: 1.2, ring_s: {type: gaussian, mean: 3}}\n"  # 22
        "    b2: {}\n"  # 23
        "    b1: {convertion_rate: 0.5}\n"  # 24
        "  agents: {defaults: {handle_time_s: -5}}\n"  # 25
        "  queues: {sales: {}}\n",  # 26
    )
    expected = [
        "8: simulation.timezone: unknown timezone 'Europe/Pariss'; did you mean Europe/Paris?",
        "9: simulation.start: 'next monday' is not a date and time (write it like \"2025-03-03T09:00:00\"",
        "12: simulation.traffic.campaigns.camp.calls_per_hour: must be greater than 0, got 0 (set calls_per_hour above 0)",
        "13: simulation.traffic.campaigns.cmap: unknown campaign 'cmap'; did you mean camp? (define it under campaigns",
        "14: simulation.traffic.hourly_profile.19-22: hour 19 is already covered by '08-20' (list each hour in one range only)",
        "14: simulation.traffic.hourly_profile.9-: '9-' is not an hour range (write it like \"08-20\"",
        "16: simulation.traffic.callers.areas.0.state: 'CAL' is not a two-letter state code (write it like CA)",
        "18: simulation.traffic.callers.answers.homeowner.no: weight -1 is not a number ≥ 0 (write it like no: 2)",
        "19: simulation.traffic.callers.answers.bill: a distribution needs a type (write it like {type: exponential, mean: 300}",
        "20: simulation.traffic.callers.answers.score.max: max 500 is below min 800 (set max to 800 or more)",
        "22: simulation.buyers.defaults.answer_rate: must be at most 1, got 1.2 (set answer_rate to 1 or less)",
        "22: simulation.buyers.defaults.ring_s.type: unknown ring_s type 'gaussian'",
        "23: simulation.buyers.b2: unknown buyer 'b2' (define it under buyers, use `defaults` for all of them, or remove it)",
        "24: simulation.buyers.b1.convertion_rate: unknown field; did you mean conversion_rate? (rename it to conversion_rate)",
        "25: simulation.agents.defaults.handle_time_s: -5 is negative (write a value of 0 or more, e.g. 300",
        "26: simulation.queues.sales: unknown queue 'sales' (define it under queues, use `defaults` for all of them, or remove it)",
    ]
    assert_problems(found, expected)


def test_every_demo_example_validates() -> None:
    for path in (DEMO, DEMO_ALT):
        cfg, found = check_config(path)
        assert found == [] and cfg is not None and cfg.simulation is not None
