"""`switchboard simulate` with time in the IVR: prompts take time, callers hang up at them.

`simulation.traffic.callers.ivr_prompt_s` and `ivr_hangup_rate` (docs/SIMULATION.md): the flow ends
(routing starts, or the call is rejected) at arrival + the time spent in it, and a caller who hangs up
at a prompt is rejected `abandoned`, as the ivr service rejects them (core.ivr.hung_up_detail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from switchboard.cli import app
from switchboard.core import ivr, reasons
from switchboard.core.config import RoutingConfig
from switchboard.simulation import CallRecord, run
from tests.unit.test_simulation import DEMO, assert_problems
from tests.unit.test_simulation_callers import OWNERS_AND_RENTERS, problems

# Three prompts for a caller who answers them all: language, homeowner, zip.
NODES = ("language", "homeowner", "zip")
ANSWERS = {"homeowner": {"yes": 3, "no": 1}, "language": {"en": 1, "es": 1}}

# A flow with a uniform menu, so that callers' inputs are drawn from their IVR input stream.
MENU_FLOW = {
    "id": "menu",
    "start": "interest",
    "nodes": {
        "interest": {
            "type": "menu",
            "prompt": "1 go on, 2 hear again, 9 stop",
            "options": {"1": "zip", "2": "interest", "9": "stop"},
        },
        "zip": {
            "type": "question",
            "prompt": "Your ZIP?",
            "answer_key": "zip",
            "validate": {"pattern": r"\d{5}"},
            "next": "done",
        },
        "done": {"type": "end", "result": "qualified"},
        "stop": {"type": "end", "result": "disqualified", "reason": "not_interested"},
    },
}


def config(
    callers: dict[str, Any],
    *,
    flow: dict[str, Any] = OWNERS_AND_RENTERS,
    buyer: dict[str, Any] | None = None,
    start: str = "2025-03-03T09:00:00",
    calls_per_hour: float = 60,
    talk_time_s: float | None = None,
) -> RoutingConfig:
    """One campaign with `flow` and one static buyer (`buyer` adds to it)."""
    buyers_model = {} if talk_time_s is None else {"b1": {"talk_time_s": talk_time_s}}
    return RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub"}],
            "buyers": [{"id": "b1", "destination": "+18005550100", "bid": {"type": "static", "price": "30.00"}, **(buyer or {})}],
            "campaigns": [
                {
                    "id": "camp",
                    "numbers": ["+18885550123"],
                    "publisher": "pub",
                    "ivr": flow["id"],
                    "routing": {"tiers": [{"strategy": "price", "buyers": ["b1"]}]},
                }
            ],
            "ivr_flows": [flow],
            "simulation": {
                "start": start,
                "traffic": {"calls_per_hour": calls_per_hour, "callers": callers},
                "buyers": buyers_model,
            },
        }
    )


def records(cfg: RoutingConfig, calls: int, seed: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out: list[CallRecord] = []
    tally = run(cfg, calls, seed, on_call=out.append)
    return tally.to_dict(), sorted((r.to_dict() for r in out), key=lambda c: c["call"])


def seconds(c: dict[str, Any], field: str = "decided_at") -> float:
    return (datetime.fromisoformat(c[field]) - datetime.fromisoformat(c["arrived_at"])).total_seconds()


# ---------------------------------------------------------------- hang-ups


def test_callers_hang_up_at_the_modelled_rate_and_are_rejected_abandoned_where_they_were() -> None:
    rate, n = 0.1, 5000
    cfg = config({"answers": {"homeowner": ["yes"]}, "ivr_prompt_s": 20, "ivr_hangup_rate": rate})
    summary, calls = records(cfg, n)
    hung_up = [c for c in calls if c["outcome"]["reason"] == reasons.ABANDONED]
    by_node = {
        node: [c for c in hung_up if c["outcome"]["detail"] == ivr.hung_up_detail(ivr.IvrState("qualify", node, "en"))]
        for node in NODES
    }
    assert sum(map(len, by_node.values())) == len(hung_up), "every hang-up names the node the caller was at"
    # The k-th prompt is reached with (1 − rate)^k and hung up at with rate: binomial, allow 4 standard deviations.
    for k, node in enumerate(NODES):
        p = (1 - rate) ** k * rate
        assert abs(len(by_node[node]) - n * p) <= 4 * (n * p * (1 - p)) ** 0.5, (node, len(by_node[node]))
        assert repr(node) in by_node[node][0]["outcome"]["detail"]
        for c in by_node[node]:
            # the prompts asked, the one hung up at included, took 20 s each; no routing happened
            assert c["ivr_s"] == seconds(c) == 20 * (k + 1)
            assert (c["outcome"]["kind"], c["outcome"]["attempt"], c["trace"]) == ("rejected", 0, {})
            assert list(c["answers"]) == list(NODES[:k])  # what they had answered (each node's answer key is its id)
    # the recovered rate: hang-ups per prompt asked
    asked = sum(k + 1 for k, node in enumerate(NODES) for _ in by_node[node]) + 3 * (n - len(hung_up))
    assert abs(len(hung_up) / asked - rate) < 0.01
    flow = summary["ivr"]["qualify"]
    assert flow["hung_up"] == len(hung_up) == summary["rejects_by_reason"][reasons.ABANDONED]
    assert flow["qualified"] + flow["disqualified"] + flow["hung_up"] == flow["calls"] == n
    assert flow["qualified"] == summary["outcomes"]["buyer"] and flow["disqualified"] == 0
    assert abs(flow["avg_ivr_s"] - sum(c["ivr_s"] for c in calls) / n) < 1e-6
    assert summary["campaigns"]["camp"]["rejected"] == len(hung_up)


def test_time_in_the_ivr_is_the_sum_of_the_prompts_asked() -> None:
    # 10 re-prompts per node: practically nobody gives up, so every caller is asked 3 prompts + their re-prompts
    patient = {
        node: {**spec, "retries": 10} if spec["type"] != "end" else spec for node, spec in OWNERS_AND_RENTERS["nodes"].items()
    }
    cfg = config(
        {"answers": ANSWERS, "invalid_input_rate": 0.2, "ivr_prompt_s": {"type": "exponential", "mean": 6}},
        flow={**OWNERS_AND_RENTERS, "nodes": patient},
    )
    summary, calls = records(cfg, 3000)
    flow = summary["ivr"]["qualify"]
    assert (flow["qualified"], flow["hung_up"]) == (3000, 0) and summary["rejects_by_reason"] == {}
    assert 0.2 * 3 * 3000 < flow["reprompts"] < 0.3 * 3 * 3000
    # every prompt, re-prompts included, is one exponential draw of mean 6 s (standard error of the mean ≈ 0.06 s)
    assert abs(sum(c["ivr_s"] for c in calls) / (3 * 3000 + flow["reprompts"]) - 6) < 0.25
    assert abs(flow["avg_ivr_s"] - sum(c["ivr_s"] for c in calls) / 3000) < 1e-3  # --out rounds to ms
    for c in calls:
        assert abs(seconds(c) - c["ivr_s"]) < 1e-3, "a static buyer takes the call the moment the flow ends"


# ---------------------------------------------------------------- routing starts when the flow ends


def test_routing_starts_when_the_flow_ends_not_when_the_call_arrives() -> None:
    """The buyer opens at 09:00; calls arrive from 08:50 and spend 5 minutes in the IVR."""
    buyer = {"schedule": {"timezone": "America/New_York", "hours": {"mon-fri": "09:00-17:00"}}}
    opens = datetime.fromisoformat("2025-03-03T09:00:00-05:00")
    untimed = config({"answers": {"homeowner": ["yes"]}}, buyer=buyer, start="2025-03-03T08:50:00", calls_per_hour=600)
    timed = config(
        {"answers": {"homeowner": ["yes"]}, "ivr_prompt_s": 100}, buyer=buyer, start="2025-03-03T08:50:00", calls_per_hour=600
    )
    _, before = records(untimed, 300)
    _, after = records(timed, 300)
    assert [c["arrived_at"] for c in before] == [c["arrived_at"] for c in after], "the same calls"
    early = 0
    for plain, c in zip(before, after, strict=True):
        arrived = datetime.fromisoformat(c["arrived_at"])
        assert c["ivr_s"] == 300 and plain["ivr_s"] == 0.0  # untimed: the IVR takes no time
        assert (plain["outcome"]["kind"] == "buyer") == (arrived >= opens)
        assert (c["outcome"]["kind"] == "buyer") == (arrived + timedelta(seconds=300) >= opens)
        if c["outcome"]["kind"] == "buyer":
            assert seconds(c) == 300
        early += arrived < opens <= arrived + timedelta(seconds=300)
    assert early > 20, "calls that arrived while the buyer was closed and reached it after the IVR"


def test_a_concurrency_cap_sees_calls_when_they_leave_the_ivr() -> None:
    """One slot, 90 s calls: the buyer's calls never overlap counted from the flow's end, though they would from arrival."""
    cfg = config(
        {"answers": {"homeowner": ["yes"]}, "ivr_prompt_s": {"type": "uniform", "min": 0, "max": 200}},
        buyer={"caps": {"concurrency": 1}},
        calls_per_hour=120,
        talk_time_s=90,
    )
    summary, calls = records(cfg, 600)
    taken = sorted((datetime.fromisoformat(c["decided_at"]), c) for c in calls if c["outcome"]["kind"] == "buyer")
    assert len(taken) > 100
    for (start, a), (next_start, _) in pairwise(taken):
        assert start + timedelta(seconds=a["outcome"]["connected_s"]) <= next_start, "two calls at once on a buyer with one slot"
    from_arrival = sorted((datetime.fromisoformat(c["arrived_at"]), c["outcome"]["connected_s"]) for _, c in taken)
    overlaps = sum(s + timedelta(seconds=d) > t for (s, d), (t, _) in pairwise(from_arrival))
    assert overlaps > 0, "counted from arrival some of them would overlap: the cap saw the later time"
    assert summary["rejects_by_reason"]


# ---------------------------------------------------------------- common random numbers, determinism


def test_timing_draws_nothing_from_the_callers_inputs() -> None:
    """The same callers key in the same inputs with and without IVR time (their own stream), and a model
    without IVR time draws nothing for it."""
    callers = {"invalid_input_rate": 0.2}
    plain_cfg = config(callers, flow=MENU_FLOW)
    timed_cfg = config({**callers, "ivr_prompt_s": {"type": "lognormal", "median": 8}, "ivr_hangup_rate": 0.05}, flow=MENU_FLOW)
    streams: list[set[str]] = []
    plain_summary = run(plain_cfg, 2000, 4, on_call=lambda r: streams.append(set(r.call.streams))).to_dict()
    assert all("ivr-time" not in s for s in streams) and any("ivr" in s for s in streams)
    assert plain_summary["ivr"]["menu"]["hung_up"] == 0 and plain_summary["ivr"]["menu"]["avg_ivr_s"] == 0.0
    _, plain = records(plain_cfg, 2000, 4)
    summary, timed = records(timed_cfg, 2000, 4)
    assert plain[0]["ivr_s"] == 0.0 and summary["ivr"]["menu"]["hung_up"] > 50
    same = 0
    for a, b in zip(plain, timed, strict=True):
        assert a["call_id"] == b["call_id"] and a["caller_number"] == b["caller_number"]
        if b["outcome"]["reason"] == reasons.ABANDONED:
            assert b["answers"].items() <= a["answers"].items()  # a prefix of the same inputs
            continue
        same += 1
        assert (a["answers"], a["zip"]) == (b["answers"], b["zip"])
        assert (a["outcome"]["reason"], a["outcome"]["detail"]) == (b["outcome"]["reason"], b["outcome"]["detail"])
    assert same > 1500
    # menu choices, "hear again" and invalid input all came from the inputs' stream
    assert plain_summary["ivr"]["menu"]["reprompts"] > 300 and plain_summary["ivr"]["menu"]["disqualified"] > 300


def test_same_seed_same_bytes_with_ivr_time(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "publishers: [{id: pub}]\n"
        "buyers:\n"
        '  - {id: b1, destination: "+18005550100", bid: {type: static, price: 30.00}, caps: {concurrency: 2}}\n'
        '  - {id: b2, destination: "+18005550101", bid: {type: static, price: 20.00}}\n'
        "campaigns:\n"
        '  - {id: camp, numbers: ["+18885550123"], publisher: pub, ivr: menu, routing: {tiers: [{strategy: price, buyers: [b1, b2]}]}}\n'
        f"ivr_flows: [{json.dumps(MENU_FLOW)}]\n"
        "simulation:\n"
        "  traffic:\n"
        "    calls_per_hour: 200\n"
        "    callers:\n"
        "      invalid_input_rate: 0.1\n"
        "      ivr_prompt_s: {type: lognormal, median: 9, sigma: 0.5}\n"
        "      ivr_hangup_rate: 0.04\n"
    )
    outputs = []
    for hash_seed in ("1", "2", "1"):
        calls_file = tmp_path / f"calls-{hash_seed}-{len(outputs)}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "switchboard.cli",
            "simulate",
            "--config",
            str(path),
            "--calls",
            "800",
            "--seed",
            "5",
            "--json",
            "--out",
            str(calls_file),
        ]
        done = subprocess.run(cmd, env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, check=True, timeout=120)
        outputs.append((done.stdout, calls_file.read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]
    summary = json.loads(outputs[0][0])
    assert summary["ivr"]["menu"]["hung_up"] > 0 and summary["rejects_by_reason"]["abandoned"] > 0
    other = run(path, 800, 6).to_dict()
    assert other["ivr"]["menu"] != summary["ivr"]["menu"]
    # the tables: the IVR flows table has the hang-ups and the mean time (only when IVR time is modelled)
    res = CliRunner().invoke(app, ["simulate", "--config", str(path), "--calls", "800", "--seed", "5"], terminal_width=160)
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stdout.splitlines() if line.strip("│ ").startswith("menu "))
    flow = summary["ivr"]["menu"]
    assert [cell.strip() for cell in row.strip("│").split("│")] == [
        "menu",
        f"{flow['calls']:,}",
        f"{flow['qualified']:,}",
        f"{flow['disqualified']:,}",
        f"{flow['reprompts']:,}",
        f"{flow['hung_up']:,}",
        f"{flow['avg_ivr_s']:,.1f} s",
    ]
    assert "hung up" in res.stdout and "avg time" in res.stdout
    plain = CliRunner().invoke(app, ["simulate", "--config", str(DEMO), "--calls", "300"], terminal_width=160)
    # Untimed: the same columns (a fixed layout), nobody hung up, no time spent.
    assert plain.exit_code == 0 and "IVR flows" in plain.stdout and "hung up" in plain.stdout and "0.0 s" in plain.stdout


# ---------------------------------------------------------------- validation


def test_bad_ivr_time_models_are_refused_with_line_field_and_fix(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "      ivr_prompt_s: {type: weekly}\n"  # 17
        "      ivr_hangup_rate: 1.5\n",  # 18
    )
    expected = [
        "17: simulation.traffic.callers.ivr_prompt_s.type: unknown ivr_prompt_s type 'weekly'",
        "18: simulation.traffic.callers.ivr_hangup_rate: must be at most 1, got 1.5 (set ivr_hangup_rate to 1 or less)",
    ]
    assert_problems(found, expected)
    assert problems(tmp_path, "      ivr_prompt_s: -4\n      ivr_hangup_rat: 0.1\n") == [
        "17: simulation.traffic.callers.ivr_prompt_s: -4 is negative (write a value of 0 or more, e.g. 300, or a distribution like {type: exponential, mean: 300})",
        "18: simulation.traffic.callers.ivr_hangup_rat: unknown field; did you mean ivr_hangup_rate? (rename it to ivr_hangup_rate)",
    ]
    assert problems(tmp_path, "      ivr_prompt_s: {mean: 8}\n      ivr_hangup_rate: -0.1\n") == [
        (
            "17: simulation.traffic.callers.ivr_prompt_s: a distribution needs a type (write it like {type: exponential, mean: 300} "
            "or a plain number for a fixed value; types: fixed, uniform, normal, lognormal, exponential)"
        ),
        "18: simulation.traffic.callers.ivr_hangup_rate: must be at least 0, got -0.1 (set ivr_hangup_rate to 0 or more)",
    ]
