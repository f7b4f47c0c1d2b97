"""`switchboard simulate` before routing: screening, duplicates and IVR flows, as the ivr service does them.

The simulator calls the ivr service's pure functions (core.caller, core.screening, core.ivr); these
tests check that simulated callers meet them as modelled in `simulation.traffic.callers`
(docs/SIMULATION.md) and that what they decide reaches routing.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from switchboard.core import ivr
from switchboard.core.caller import caller_facts
from switchboard.core.config import RoutingConfig
from switchboard.demo.traffic import AREAS
from switchboard.simulation import CallRecord, run
from switchboard.simulation.simulator import Simulator
from tests.unit.test_simulation import assert_problems, refused

STATIC = {"type": "static", "price": "30.00"}

# A small flow: language, a yes/no question that disqualifies renters, a ZIP, and the end.
FLOW = {
    "id": "qualify",
    "start": "language",
    "nodes": {
        "language": {
            "type": "set_language",
            "prompt": "1 English, 2 español",
            "options": {"1": "en", "2": "es"},
            "next": "homeowner",
        },
        "homeowner": {
            "type": "question",
            "prompt": "Own your home? 1 yes, 2 no",
            "answer_key": "homeowner",
            "validate": {"yes_no": True},
            "retries": 1,
            "branches": [{"when": {"eq": "no"}, "goto": "renter"}],
            "next": "zip",
        },
        "zip": {
            "type": "question",
            "prompt": "Your ZIP?",
            "answer_key": "zip",
            "validate": {"pattern": r"\d{5}"},
            "next": "done",
        },
        "done": {"type": "end", "result": "qualified"},
        "renter": {"type": "end", "result": "disqualified", "reason": "not_homeowner"},
    },
}

# The same flow without the renter branch: everybody who answers qualifies.
OWNERS_AND_RENTERS = {
    **FLOW,
    "nodes": {
        **{k: v for k, v in FLOW["nodes"].items() if k != "renter"},
        "homeowner": {**FLOW["nodes"]["homeowner"], "branches": []},
    },
}


def config(
    *,
    callers: dict[str, Any] | None = None,
    campaign: dict[str, Any] | None = None,
    buyers: list[dict[str, Any]] | None = None,
    flows: list[dict[str, Any]] | None = None,
    blocklist: dict[str, Any] | None = None,
    calls_per_hour: float = 60,
) -> RoutingConfig:
    """One publisher, one campaign (`campaign` adds to it), one buyer unless `buyers`."""
    buyers = buyers or [{"id": "b1", "destination": "+18005550100", "bid": STATIC}]
    data: dict[str, Any] = {
        "publishers": [{"id": "pub"}],
        "buyers": buyers,
        "campaigns": [
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"max_attempts": len(buyers), "tiers": [{"strategy": "price", "buyers": [b["id"] for b in buyers]}]},
                **(campaign or {}),
            }
        ],
        "ivr_flows": flows or [],
        "simulation": {"traffic": {"calls_per_hour": calls_per_hour, "callers": callers or {}}},
    }
    if blocklist is not None:
        data["blocklist"] = blocklist
    return RoutingConfig.model_validate(data)


def records(cfg: RoutingConfig, calls: int, seed: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out: list[CallRecord] = []
    tally = run(cfg, calls, seed, on_call=out.append)
    return tally.to_dict(), sorted((r.to_dict() for r in out), key=lambda c: c["call"])


def at(c: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(c["arrived_at"])


# ---------------------------------------------------------------- screening


def test_screening_reasons_come_in_the_modelled_shares() -> None:
    cfg = config(
        callers={"blocked_rate": 0.05, "invalid_number_rate": 0.04, "anonymous_rate": 0.03},
        blocklist={"numbers": ["+13105550199"], "prefixes": ["+1900"], "area_codes": ["718"]},  # no caller area has 718
        campaign={"blocklist": {"numbers": ["+14155550123"]}},
    )
    n = 6000
    summary, calls = records(cfg, n)
    rejects = summary["rejects_by_reason"]
    assert set(rejects) == {"blocked", "invalid_number"}
    # binomial standard deviations: blocked 17, invalid_number 20; allow 4 of them
    assert abs(rejects["blocked"] - 0.05 * n) <= 70
    assert abs(rejects["invalid_number"] - 0.07 * n) <= 80
    assert summary["outcomes"]["buyer"] == n - rejects["blocked"] - rejects["invalid_number"]
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for c in calls:
        by_reason.setdefault(c["outcome"]["reason"], []).append(c)
    # blocked callers call from an entry of the global or the campaign's blocklist, named in the detail
    matched: Counter[str] = Counter()
    for c in by_reason["blocked"]:
        number, detail = c["caller_number"], c["outcome"]["detail"]
        if number in ("+13105550199", "+14155550123"):
            matched["number"] += 1
            assert f"number {number}" in detail
        elif number.startswith("+1900"):
            matched["prefix"] += 1
            assert "prefix +1900 on the global blocklist" in detail
        else:
            assert number.startswith("+1718") and "area code 718" in detail
            matched["area code"] += 1
        assert c["trace"] == {} and c["answers"] == {}
    assert len(matched) == 3 and "the blocklist of campaign camp" in " ".join(
        c["outcome"]["detail"] for c in by_reason["blocked"]
    )
    # invalid numbers and withheld ones: core.caller finds nothing to place
    anonymous = [c for c in by_reason["invalid_number"] if c["caller_number"] == ""]
    assert abs(len(anonymous) - 0.03 * n) <= 55
    for c in by_reason["invalid_number"]:
        assert not caller_facts(c["caller_number"]).valid and c["state"] == "" and c["area_code"] == ""
    # everyone else: a valid number of the area the caller was drawn from, whose state routing sees
    for c in by_reason[""]:
        facts = caller_facts(c["caller_number"])
        assert facts.valid and (c["state"], c["area_code"]) == (facts.state, facts.area_code) != ("", "")
    assert len({c["caller_number"] for c in by_reason[""]}) == len(by_reason[""]), "new callers never share a number"


def test_without_blocklist_entries_blocked_callers_are_ordinary_and_allowed_invalid_numbers_route() -> None:
    cfg = config(callers={"blocked_rate": 0.5, "anonymous_rate": 0.2}, campaign={"allow_invalid_numbers": True})
    summary, calls = records(cfg, 500)
    assert summary["outcomes"] == {"buyer": 500, "agent": 0, "rejected": 0}
    anonymous = [c for c in calls if c["caller_number"] == ""]
    assert 60 < len(anonymous) < 140
    assert all(c["state"] == "" and c["area_code"] == "" for c in anonymous)  # routed with unknown geography, as live


# ---------------------------------------------------------------- repeat callers and duplicate_window


def repeat_config(window: str, after_s: float, rate: float = 0.5) -> RoutingConfig:
    return config(callers={"repeat_rate": rate, "repeat_after_s": after_s}, campaign={"duplicate_window": window})


def test_a_repeat_caller_inside_the_window_is_a_duplicate() -> None:
    summary, calls = records(repeat_config("90m", 3600), 1000)
    by_index = {c["call"]: c for c in calls}
    repeats = [c for c in calls if c["repeat_of"] is not None]
    assert summary["repeat_calls"] == len(repeats) and 400 < len(repeats) < 600
    for c in repeats:
        first = by_index[c["repeat_of"]]
        assert c["caller_number"] == first["caller_number"] and c["campaign_id"] == first["campaign_id"]
        assert (at(c) - at(first)).total_seconds() == pytest.approx(3600)
        # the window runs from the caller's last accepted call: a duplicate opens none
        accepted = first
        while accepted["outcome"]["reason"] == "duplicate":
            accepted = by_index[accepted["repeat_of"]]
        age = (at(c) - at(accepted)).total_seconds()
        assert age in (pytest.approx(3600), pytest.approx(7200))
        assert c["outcome"]["reason"] == ("duplicate" if age < 5400 else "")
    duplicates = [c for c in repeats if c["outcome"]["reason"] == "duplicate"]
    assert summary["rejects_by_reason"] == {"duplicate": len(duplicates)}
    assert duplicates and len(duplicates) < len(repeats), "a chain alternates: duplicate, then accepted again"
    assert all("duplicate_window is 90m" in c["outcome"]["detail"] for c in duplicates)
    assert all(c["trace"] == {} for c in duplicates)


def test_a_repeat_caller_outside_the_window_is_not_a_duplicate() -> None:
    summary, _ = records(repeat_config("2h", 7201), 1000)
    assert summary["repeat_calls"] > 400
    assert summary["rejects_by_reason"] == {} and summary["outcomes"]["buyer"] == 1000
    # without a window, repeat callers are never duplicates either
    summary, _ = records(config(callers={"repeat_rate": 0.5, "repeat_after_s": 60}), 1000)
    assert summary["repeat_calls"] > 400 and summary["rejects_by_reason"] == {}


def test_repeat_calls_keep_calls_per_hour_and_the_number_of_calls() -> None:
    summary, calls = records(
        config(callers={"repeat_rate": 0.3, "repeat_after_s": {"type": "exponential", "mean": 600}}, calls_per_hour=120), 3000
    )
    assert summary["calls"] == 3000 and len(calls) == 3000 and [c["call"] for c in calls] == list(range(1, 3001))
    assert abs(summary["repeat_calls"] - 0.3 * 3000) < 120
    assert 110 < summary["clock"]["calls_per_hour"] < 130  # first calls at 120 × 0.7, repeats on top
    assert all(at(a) <= at(b) for a, b in pairwise(calls)), "calls are numbered in arrival order"


# ---------------------------------------------------------------- IVR flows


def test_a_disqualifying_answer_ends_disqualified() -> None:
    cfg = config(flows=[FLOW], campaign={"ivr": "qualify"}, callers={"answers": {"homeowner": {"yes": 1, "no": 1}}})
    summary, calls = records(cfg, 800)
    renters = [c for c in calls if c["answers"].get("homeowner") == "no"]
    assert 320 < len(renters) < 480
    for c in renters:
        o = c["outcome"]
        assert (o["kind"], o["reason"], o["attempt"]) == ("rejected", "disqualified", 0)
        assert o["detail"] == "IVR flow qualify ended at 'renter': not_homeowner" and c["trace"] == {}
        assert c["answers"] == {"language": "en", "homeowner": "no"}  # what the flow gathered, with the language
    owners = [c for c in calls if c not in renters]
    assert all(c["outcome"]["kind"] == "buyer" and c["answers"]["homeowner"] == "yes" for c in owners)
    assert summary["rejects_by_reason"] == {"disqualified": len(renters)}
    assert summary["ivr"] == {
        "qualify": {
            "calls": 800,
            "qualified": len(owners),
            "disqualified": len(renters),
            "disqualified_by": {"not_homeowner": len(renters)},
            "reprompts": 0,
            "hung_up": 0,
            "avg_ivr_s": 0.0,
        }
    }


def test_the_flows_answers_decide_eligibility() -> None:
    buyers = [
        {
            "id": "spanish-owners",
            "destination": "+18005550100",
            "bid": {"type": "static", "price": "50.00"},
            "filters": {"answers": {"homeowner": {"eq": "yes"}, "language": {"eq": "es"}}},
        },
        {
            "id": "la-zips",
            "destination": "+18005550101",
            "bid": {"type": "static", "price": "40.00"},
            "filters": {"zip_prefixes": ["900"]},
        },
        {"id": "anyone", "destination": "+18005550102", "bid": {"type": "static", "price": "10.00"}},
    ]
    flow = OWNERS_AND_RENTERS
    cfg = config(
        buyers=buyers,
        flows=[flow],
        campaign={"ivr": "qualify"},
        callers={"answers": {"homeowner": {"yes": 1, "no": 1}, "language": {"en": 1, "es": 1}}},
    )
    summary, calls = records(cfg, 1000)
    assert summary["outcomes"]["buyer"] == 1000
    for c in calls:
        answers, buyer = c["answers"], c["outcome"]["buyer_id"]
        assert set(answers) == {"language", "homeowner", "zip"} and c["zip"] == answers["zip"]  # the keyed-in ZIP is the caller's
        if answers["homeowner"] == "yes" and answers["language"] == "es":
            assert buyer == "spanish-owners"
        elif c["zip"].startswith("900"):
            assert buyer == "la-zips"
        else:
            assert buyer == "anyone"
    got = Counter(c["outcome"]["buyer_id"] for c in calls)
    assert 180 < got["spanish-owners"] < 320 and got["la-zips"] > 20
    # answers the flow does not ask never reach routing: without the ZIP question, no call has a ZIP
    nodes = {k: v for k, v in flow["nodes"].items() if k != "zip"}
    no_zip = {**flow, "nodes": {**nodes, "homeowner": {**nodes["homeowner"], "next": "done"}}}
    cfg = config(
        buyers=buyers,
        flows=[no_zip],
        campaign={"ivr": "qualify"},
        callers={"answers": {"homeowner": ["yes"], "language": ["en"], "x": [1]}},
    )
    summary, calls = records(cfg, 300)
    assert all(c["zip"] == "" and c["answers"] == {"language": "en", "homeowner": "yes"} for c in calls)
    assert summary["buyers"]["anyone"]["connected"] == 300


def test_menus_follow_the_answer_then_the_menu_weights_then_uniform() -> None:
    flow = {
        "id": "menu",
        "start": "product",
        "nodes": {
            "product": {
                "type": "menu",
                "prompt": "1 solar, 2 roof",
                "answer_key": "product",
                "options": {"1": {"next": "interest", "value": "solar"}, "2": {"next": "interest", "value": "roofing"}},
            },
            "interest": {
                "type": "menu",
                "prompt": "1 go on, 2 hear again, 9 stop",
                "options": {"1": "done", "2": "interest", "9": "stop"},
            },
            "done": {"type": "end", "result": "qualified"},
            "stop": {"type": "end", "result": "disqualified", "reason": "not_interested"},
        },
    }
    weights = {"menu": {"interest": {"1": 6, "2": 1, "9": 3}}}
    cfg = config(
        flows=[flow], campaign={"ivr": "menu"}, callers={"answers": {"product": {"solar": 3, "roofing": 1}}, "menus": weights}
    )
    summary, calls = records(cfg, 2000)
    qualified = [c for c in calls if c["outcome"]["kind"] == "buyer"]
    assert {c["answers"]["product"] for c in calls} == {"solar", "roofing"}
    assert abs(sum(c["answers"]["product"] == "solar" for c in calls) - 1500) < 90
    # "hear again" repeats the menu: ends 6:3 between go on and stop
    assert abs(len(qualified) - 2000 * 6 / 9) < 110
    assert summary["ivr"]["menu"]["disqualified_by"] == {"not_interested": 2000 - len(qualified)}
    uniform, _ = records(config(flows=[flow], campaign={"ivr": "menu"}), 2000)
    assert abs(uniform["ivr"]["menu"]["qualified"] - 1000) < 110  # 1 and 9 alike; no product modelled: 1 or 2 alike


def test_invalid_input_is_reprompted_then_gives_up() -> None:
    cfg = config(
        flows=[OWNERS_AND_RENTERS],
        campaign={"ivr": "qualify"},
        callers={"invalid_input_rate": 0.3, "answers": {"homeowner": ["yes"]}},
    )
    summary, calls = records(cfg, 2000)
    f = summary["ivr"]["qualify"]
    assert f["calls"] == f["qualified"] + f["disqualified"] == 2000
    # homeowner (retries 1) gives up after 2 refusals, zip and language (retries 2) after 3
    expected = 2000 * (1 - (1 - 0.3**2) * (1 - 0.3**3) ** 2)
    assert abs(f["disqualified_by"]["invalid_input"] - expected) < 60
    assert f["reprompts"] > 0.25 * 3 * 2000
    gave_up = [c for c in calls if c["outcome"]["reason"] == "disqualified"]
    assert all(c["outcome"]["detail"].endswith(": invalid_input") for c in gave_up)


def test_questions_without_an_answer_model() -> None:
    """yes/no, choices and bounded numbers get a valid answer; a free-form question gets none (invalid_input)."""
    flow = {
        "id": "unmodelled",
        "start": "owner",
        "nodes": {
            "owner": {"type": "question", "prompt": "?", "answer_key": "owner", "validate": {"yes_no": True}, "next": "fuel"},
            "fuel": {
                "type": "question",
                "prompt": "?",
                "answer_key": "fuel",
                "validate": {"choices": ["gas", "electric"]},
                "next": "bill",
            },
            "bill": {"type": "question", "prompt": "?", "answer_key": "bill", "validate": {"min": 10, "max": 20}, "next": "name"},
            "name": {"type": "question", "prompt": "?", "answer_key": "name", "next": "done"},
            "done": {"type": "end", "result": "qualified"},
        },
    }
    summary, calls = records(config(flows=[flow], campaign={"ivr": "unmodelled"}), 200)
    assert summary["ivr"]["unmodelled"]["disqualified_by"] == {"invalid_input": 200}
    for c in calls:
        assert c["answers"]["owner"] in ("yes", "no") and c["answers"]["fuel"] in ("gas", "electric")
        assert 10 <= int(c["answers"]["bill"]) <= 20 and "name" not in c["answers"]


def test_flow_end_is_the_ivr_services_rule() -> None:
    """core.ivr.flow_end, which the ivr service and the simulator both apply to a finished flow."""
    flow = RoutingConfig.model_validate({"ivr_flows": [FLOW]}).ivr_flows[0]
    step = ivr.current(flow, ivr.start(flow))
    for key in ("2", "1", "90210"):
        step = ivr.answer(flow, step.state, key, "digits")
    assert isinstance(step, ivr.Finished)
    end = ivr.flow_end(step)
    assert (end.qualified, end.zip, end.answers) == (True, "90210", {"language": "es", "homeowner": "yes", "zip": "90210"})
    long_zip = ivr.flow_end(ivr.Finished(True, "", {"zip": "90210-1234", "language": "fr"}, "en", "done", "", step.state))
    assert (long_zip.zip, long_zip.answers) == (
        "90210",
        {"zip": "90210", "language": "fr"},
    )  # the flow's own language answer stays
    odd = ivr.flow_end(ivr.Finished(True, "", {"zip": "9021"}, "en", "done", "", step.state))  # a ZIP the flow let through
    assert (odd.zip, odd.answers) == (None, {"language": "en"})
    step = ivr.current(flow, ivr.start(flow))
    for key in ("1", "2"):
        step = ivr.answer(flow, step.state, key, "digits")
    end = ivr.flow_end(step)
    assert (end.qualified, end.zip, end.answers) == (False, None, {"language": "en", "homeowner": "no"})
    assert end.detail == "IVR flow qualify ended at 'renter': not_homeowner"


# ---------------------------------------------------------------- determinism and the caller facts cache


def test_same_seed_same_bytes_with_screening_repeats_and_ivr() -> None:
    cfg = config(
        flows=[FLOW],
        campaign={"ivr": "qualify", "duplicate_window": "1h"},
        blocklist={"prefixes": ["+1900"]},
        callers={
            "blocked_rate": 0.02,
            "invalid_number_rate": 0.02,
            "anonymous_rate": 0.02,
            "repeat_rate": 0.2,
            "repeat_after_s": {"type": "lognormal", "median": 1800, "sigma": 1},
            "invalid_input_rate": 0.1,
            "answers": {"homeowner": {"yes": 3, "no": 1}, "language": ["en", "es"]},
        },
    )
    runs = [json.dumps(records(cfg, 1500, 5), sort_keys=True) for _ in range(2)]
    assert runs[0] == runs[1]
    assert json.dumps(records(cfg, 1500, 6), sort_keys=True) != runs[0]
    reasons = json.loads(runs[0])[0]["rejects_by_reason"]
    assert {"blocked", "invalid_number", "duplicate", "disqualified"} <= set(reasons)


def test_callers_do_not_change_when_screening_is_modelled() -> None:
    """Areas, ZIPs and answers come from the callers' stream as before; numbers from a stream of their own."""
    plain = config(callers={"answers": {"homeowner": ["yes", "no"]}})
    screened = config(
        callers={"answers": {"homeowner": ["yes", "no"]}, "invalid_number_rate": 0.1, "anonymous_rate": 0.1},
        campaign={"allow_invalid_numbers": True},
    )
    a, b = records(plain, 300, 3)[1], records(screened, 300, 3)[1]
    assert [(c["zip"], c["answers"]) for c in a] == [(c["zip"], c["answers"]) for c in b]
    same = [(x, y) for x, y in zip(a, b, strict=True) if caller_facts(y["caller_number"]).valid]
    assert 200 < len(same) < 280 and all(x["caller_number"] == y["caller_number"] and x["state"] == y["state"] for x, y in same)


def test_caller_facts_depend_on_area_code_and_exchange_only() -> None:
    """Simulator._caller_facts caches core.caller.caller_facts by +1 NPA NXX: the line must not matter."""
    rng = random.Random(7)
    for _, area_code, _ in AREAS:
        for exchange in rng.sample(range(200, 1000), 25):
            facts = [caller_facts(f"+1{area_code}{exchange}{rng.randrange(10_000):04d}") for _ in range(3)]
            assert len({(f.valid, f.area_code, f.state, f.timezone, f.invalid_reason) for f in facts}) == 1
    sim = Simulator(config(), 1)
    for number in ("+12135550123", "+12135559876", "+11005550123", "", "+1900555"):
        assert sim._caller_facts(number) == caller_facts(number)


# ---------------------------------------------------------------- validation


def problems(tmp_path: Path, callers: str) -> list[str]:
    return refused(
        tmp_path,
        "version: 1\n"
        "publishers: [{id: pub}]\n"
        "buyers:\n"
        '  - {id: b1, destination: "+18005550100", bid: {type: static, price: 10.00}}\n'
        "campaigns:\n"
        '  - {id: camp, numbers: ["+18885550123"], publisher: pub, ivr: f, routing: {tiers: [{strategy: price, buyers: [b1]}]}}\n'
        "ivr_flows:\n"
        "  - id: f\n"
        "    start: lang\n"
        "    nodes:\n"
        '      lang: {type: set_language, prompt: "1 en", options: {1: en}, next: pick}\n'
        '      pick: {type: menu, prompt: "1 or 9", options: {1: done, 9: done}}\n'
        "      done: {type: end, result: qualified}\n"
        "simulation:\n"
        "  traffic:\n"
        "    callers:\n" + callers,
    )


def test_bad_caller_models_are_refused_with_line_field_and_fix(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "      blocked_rate: 0.6\n"  # 17
        "      invalid_number_rate: 0.5\n"  # 18
        "      repeat_rate: 1\n"  # 19
        "      repeat_after_s: {type: weekly}\n"  # 20
        "      invalid_input_rate: -0.1\n"  # 21
        "      areas:\n"  # 22
        '        - {state: CA, area_code: "212"}\n'  # 23
        '        - {area_code: "199"}\n'  # 24
        "      menus:\n"  # 25
        "        f:\n"  # 26
        "          pick: {1: 2, 7: 1, x: 1}\n"  # 27
        "          lang: {1: 1}\n"  # 28
        "          pik: {1: 1}\n"  # 29
        "        g: {pick: {1: 1}}\n",  # 30
    )
    expected = [
        "17: simulation.traffic.callers.blocked_rate: blocked_rate + invalid_number_rate + anonymous_rate is 1.1, more than every call (keep their sum at 1 or less)",
        "19: simulation.traffic.callers.repeat_rate: must be less than 1, got 1 (set repeat_rate below 1)",
        "20: simulation.traffic.callers.repeat_after_s.type: unknown repeat_after_s type 'weekly'",
        "21: simulation.traffic.callers.invalid_input_rate: must be at least 0, got -0.1 (set invalid_input_rate to 0 or more)",
        "23: simulation.traffic.callers.areas.0.state: area code 212 is in NY, not CA (set state: NY, or leave state out)",
        "24: simulation.traffic.callers.areas.1.area_code: area code 199 has no valid phone numbers",
        "27: simulation.traffic.callers.menus.f.pick.x: 'x' is not a single phone key",
        "27: simulation.traffic.callers.menus.f.pick.7: menu pick has no option '7' (use its keys: 1, 9)",
        "28: simulation.traffic.callers.menus.f.lang: node 'lang' is a set_language node, not a menu (callers choose their language by the language answer",
        "29: simulation.traffic.callers.menus.f.pik: flow f has no node 'pik'; did you mean pick? (name one of its menus: pick)",
        "30: simulation.traffic.callers.menus.g: unknown IVR flow 'g' (define it under ivr_flows, or remove it)",
    ]
    assert_problems(found, expected)
    assert problems(tmp_path, "      menus: {f: {pick: {1: 0, 9: 0}}}\n") == [
        '17: simulation.traffic.callers.menus.f.pick: no key has a weight above 0: callers could not choose (write it like {"1": 3, "9": 1})'
    ]
