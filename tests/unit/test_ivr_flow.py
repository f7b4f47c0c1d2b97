"""IVR flows: the node format's validation (file:line: path: message (fix)) and the pure engine (core/ivr.py)."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.core.config import ConfigError, IvrFlow, RoutingConfig, ivr_node_targets
from switchboard.core.ivr import (
    INVALID_INPUT,
    MAX_STEPS,
    NO_QUESTIONS,
    Finished,
    IvrState,
    Prompt,
    answer,
    current,
    normalize_speech,
    spoken_number,
    start,
)
from switchboard.platform.configfile import load_config

HEAD = """\
version: 1
publishers: [{id: pub}]
buyers:
  - {id: b1, destination: "+18005550100", bid: {type: static, price: 40.00}}
campaigns:
  - id: c1
    numbers: ["+18885550123"]
    publisher: pub
    ivr: solar
    routing: {tiers: [{strategy: price, buyers: [b1]}]}
"""

# The example of docs/IVR.md: language choice, a menu with a repeat loop, yes/no, ZIP, numeric bill with branches.
FLOW = r"""
ivr_flows:
  - id: solar
    language: en
    start: language
    max_steps: 30
    nodes:
      language:
        type: set_language
        prompt: "For English, press 1. Para español, oprima 2."
        options:
          1: en
          2: {language: es, say: [espanol]}
        next: interest
      interest:
        type: menu
        prompt:
          en: "Press 1 for a solar quote, 2 to hear this again, 9 if you are not interested."
          es: "Oprima 1 para una cotización solar, 2 para repetir, 9 si no le interesa."
        answer_key: product
        options:
          1: {next: homeowner, value: solar, say: [quote, solar]}
          2: interest
          9: {next: not_interested, say: [not interested]}
      homeowner:
        type: question
        prompt:
          en: "Do you own your home? Press 1 for yes, 2 for no."
          es: "¿Es dueño de su casa? Oprima 1 para sí, 2 para no."
        answer_key: homeowner
        validate: {yes_no: true}
        branches:
          - when: {eq: "no"}
            goto: renter
        next: zip
      zip:
        type: question
        prompt:
          en: "Enter or say your five-digit ZIP code."
          es: "Marque o diga su código postal de cinco dígitos."
        retry_prompt:
          en: "Sorry, that is not a ZIP code. Five digits, please."
        answer_key: zip
        validate: {pattern: '\d{5}'}
        retries: 1
        on_invalid: monthly_bill
        next: monthly_bill
      monthly_bill:
        type: question
        prompt:
          en: "About how much is your monthly electric bill, in dollars?"
          es: "¿Cuánto paga de luz al mes, en dólares?"
        answer_key: monthly_bill
        input: digits_or_speech
        validate: {min: 0, max: 5000}
        branches:
          - when: {lt: 50}
            goto: low_bill
          - when: {between: [50, 99], homeowner: {eq: "yes"}}
            goto: small
        next: qualified
      qualified:
        type: end
        result: qualified
        prompt: {en: "Thank you! Connecting you now.", es: "¡Gracias! Le comunicamos ahora."}
      small:
        type: end
        result: qualified
        reason: small_bill
      renter:
        type: end
        result: disqualified
        reason: not_homeowner
        prompt: "Sorry, this offer is for homeowners."
      low_bill: {type: end, result: disqualified, reason: low_bill}
      not_interested: {type: end, result: disqualified}
"""


def flow_of(text: str = FLOW) -> IvrFlow:
    import yaml

    return RoutingConfig.model_validate(yaml.safe_load(HEAD + text)).ivr_flows[0]


@pytest.fixture(scope="module")
def flow() -> IvrFlow:
    return flow_of()


def walk(flow: IvrFlow, *inputs: tuple[str, str], language: str | None = None):
    """Answer `inputs` in order; return every step (the first is the opening prompt)."""
    steps = [current(flow, start(flow, language))]
    for text, kind in inputs:
        assert isinstance(steps[-1], Prompt), f"flow ended early at {steps[-1]}"
        steps.append(answer(flow, steps[-1].state, text, kind))
    return steps


D, S = "digits", "speech"


# ---------------------------------------------------------------- the engine


def test_multi_level_walk_with_digits(flow: IvrFlow):
    steps = walk(flow, ("1", D), ("1", D), ("1", D), ("90210#", D), ("250", D))
    assert [s.node for s in steps[:-1]] == ["language", "interest", "homeowner", "zip", "monthly_bill"]
    assert steps[1].text.startswith("Press 1 for a solar quote") and steps[1].num_digits == 1
    end = steps[-1]
    assert isinstance(end, Finished) and end.qualified and end.reason == "qualified" and end.node == "qualified"
    assert end.answers == {"language": "en", "product": "solar", "homeowner": "yes", "zip": "90210", "monthly_bill": "250"}
    assert end.text == "Thank you! Connecting you now." and end.language == "en"


def test_multi_level_walk_with_speech(flow: IvrFlow):
    steps = walk(
        flow,
        ("Español, por favor.", S),
        ("I'd like a QUOTE!", S),
        ("Sí, claro", S),
        ("nine oh two one zero", S),
        ("About two hundred fifty dollars", S),
    )
    end = steps[-1]
    assert isinstance(end, Finished) and end.qualified
    assert end.answers == {"language": "es", "product": "solar", "homeowner": "yes", "zip": "90210", "monthly_bill": "250"}
    assert end.text == "¡Gracias! Le comunicamos ahora." and end.language == "es"


def test_language_selection_switches_prompts(flow: IvrFlow):
    steps = walk(flow, ("2", D), ("1", D))
    assert steps[1].text.startswith("Oprima 1 para una cotización") and steps[1].language == "es"
    assert steps[2].text.startswith("¿Es dueño")
    # a caller who starts in Spanish hears Spanish from the first prompt with a translation
    es = walk(flow, ("1", D), language="es")
    assert es[0].text.startswith("For English")  # the language prompt has one text for all
    assert es[1].text.startswith("Press 1 for a solar")  # the caller chose English
    # a prompt without the language falls back to the flow's default
    steps = walk(flow, ("2", D), ("1", D), ("1", D), ("123", D))
    assert steps[-1].node == "zip" and steps[-1].text.startswith("Sorry, that is not a ZIP")


def test_invalid_answers_reprompt_then_go_on_invalid(flow: IvrFlow):
    steps = walk(flow, ("1", D), ("1", D), ("1", D), ("12", D), ("hello", S))
    assert [(s.node, s.attempt) for s in steps[3:]] == [("zip", 1), ("zip", 2), ("monthly_bill", 1)]
    assert "zip" not in steps[-1].state.answers


def test_invalid_answers_disqualify_without_on_invalid(flow: IvrFlow):
    steps = walk(flow, ("1", D), ("1", D), ("7", D), ("maybe", S), ("3", D))
    assert [(s.node, s.attempt) for s in steps[2:5]] == [("homeowner", 1), ("homeowner", 2), ("homeowner", 3)]
    end = steps[-1]
    assert isinstance(end, Finished) and not end.qualified and end.reason == INVALID_INPUT and end.text == ""


def test_menu_wrong_key_and_repeat_loop(flow: IvrFlow):
    steps = walk(flow, ("1", D), ("5", D), ("2", D), ("press one", S))
    assert [(s.node, s.attempt) for s in steps[1:4]] == [("interest", 1), ("interest", 2), ("interest", 1)]
    assert steps[-1].node == "homeowner"


def test_disqualified_end(flow: IvrFlow):
    end = walk(flow, ("1", D), ("1", D), ("no I rent", S))[-1]
    assert isinstance(end, Finished) and not end.qualified and end.reason == "not_homeowner"
    assert end.text == "Sorry, this offer is for homeowners." and end.answers["homeowner"] == "no"
    end = walk(flow, ("1", D), ("not interested", S))[-1]
    assert isinstance(end, Finished) and end.reason == "not_interested"  # no reason: the end node's id


@pytest.mark.parametrize(
    ("bill", "qualified", "reason"),
    [
        ("49", False, "low_bill"),
        ("0050", True, "small_bill"),
        ("99", True, "small_bill"),
        ("100", True, "qualified"),
        ("5000", True, "qualified"),
    ],
)
def test_branches_on_numeric_answers(flow: IvrFlow, bill: str, qualified: bool, reason: str):
    end = walk(flow, ("1", D), ("1", D), ("1", D), ("90210", D), (bill, D))[-1]
    assert isinstance(end, Finished) and (end.qualified, end.reason) == (qualified, reason)


def test_numeric_validation_bounds(flow: IvrFlow):
    steps = walk(flow, ("1", D), ("1", D), ("1", D), ("90210", D), ("6000", D), ("$1,250", S))
    assert (steps[-2].node, steps[-2].attempt) == ("monthly_bill", 2)
    assert isinstance(steps[-1], Finished) and steps[-1].answers["monthly_bill"] == "1250"


def test_speech_to_a_digits_only_node_is_invalid():
    flow = flow_of(FLOW.replace("answer_key: zip\n", "answer_key: zip\n        input: digits\n"))
    steps = walk(flow, ("1", D), ("1", D), ("1", D), ("nine oh two one zero", S))
    assert (steps[-1].node, steps[-1].attempt) == ("zip", 2)


def test_state_is_json_and_resumes(flow: IvrFlow):
    step = walk(flow, ("2", D), ("1", D))[-1]
    saved = json.dumps(step.state.to_dict())
    restored = IvrState.from_dict(json.loads(saved))
    assert restored == step.state
    assert current(flow, restored) == step
    end = answer(flow, restored, "2", "digits")
    assert isinstance(end, Finished) and end.reason == "not_homeowner" and end.language == "es"
    assert answer(flow, end.state, "1", "digits") == end  # answering after the end changes nothing
    with pytest.raises(ValueError, match="no longer has"):
        current(flow, IvrState.from_dict({**step.state.to_dict(), "node": "gone"}))


def test_max_steps_ends_a_caller_circling_a_menu():
    flow = flow_of(FLOW.replace("max_steps: 30", "max_steps: 5"))
    steps = walk(flow, ("1", D), ("2", D), ("2", D), ("2", D), ("2", D))
    end = steps[-1]
    assert isinstance(end, Finished) and not end.qualified and end.reason == MAX_STEPS


def test_flow_without_nodes_qualifies_at_once():
    flow = IvrFlow(id="later")
    end = current(flow, start(flow))
    assert isinstance(end, Finished) and end.qualified and end.reason == NO_QUESTIONS and end.answers == {}


@pytest.mark.parametrize(
    ("said", "normal", "number"),
    [
        ("Sí, ¡Español!", "si espanol", None),
        ("nine oh two one zero", "nine oh two one zero", "90210"),
        ("Twenty-five", "twenty five", "25"),
        ("a hundred and five", "a hundred and five", "105"),
        ("$1,250.50", "1250.50", "1250.50"),
        ("two thousand three hundred", "two thousand three hundred", "2300"),
        ("oh", "oh", None),
        ("the blue one", "the blue one", None),
    ],
)
def test_speech_normalisation(said: str, normal: str, number: str | None):
    assert normalize_speech(said) == normal
    assert spoken_number(normal) == number


# ---------------------------------------------------------------- random walks terminate

INPUTS = st.one_of(
    st.sampled_from(["1", "2", "9", "0", "*", "#", "90210", "49", "250", "6000", ""]).map(lambda t: (t, D)),
    st.sampled_from(["yes", "no", "quote", "espanol", "nine oh two one zero", "fifty", "blah", ""]).map(lambda t: (t, S)),
    st.text(max_size=12).map(lambda t: (t, S)),
)


@settings(max_examples=300, deadline=None)
@given(inputs=st.lists(INPUTS, min_size=0, max_size=60), language=st.sampled_from([None, "en", "es"]))
def test_random_walks_always_finish_within_max_steps(inputs, language):
    flow = _FLOW_FOR_WALKS
    step = current(flow, start(flow, language))
    for n, (text, kind) in enumerate(inputs * 2 + [("", D)] * flow.max_steps, start=1):
        if isinstance(step, Finished):
            break
        step = answer(flow, step.state, text, kind)
        assert n <= flow.max_steps
    assert isinstance(step, Finished)
    assert step.state.steps <= flow.max_steps
    assert isinstance(step.qualified, bool) and step.reason
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in step.answers.items())


_FLOW_FOR_WALKS = flow_of()


@settings(max_examples=200, deadline=None)
@given(inputs=st.lists(INPUTS, min_size=0, max_size=40))
def test_flows_without_loops_finish_within_nodes_times_attempts(inputs):
    """Without a loop, every node is asked at most 1 + retries times, so a call ends without max_steps."""
    flow = flow_of(FLOW.replace("          2: interest\n", "").replace("max_steps: 30", "max_steps: 1000"))
    bound = sum(1 + getattr(n, "retries", 0) for n in flow.nodes.values())
    step = current(flow, start(flow))
    for text, kind in inputs + [("", D)] * bound:
        if isinstance(step, Finished):
            break
        step = answer(flow, step.state, text, kind)
    assert isinstance(step, Finished) and step.reason != MAX_STEPS and step.state.steps <= bound


# ---------------------------------------------------------------- validation refusals


def problems_of(tmp_path: Path, flow_text: str) -> tuple[Path, str, list[str]]:
    f = tmp_path / "routing.yaml"
    text = HEAD + flow_text
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    return f, text, err.value.problems


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def test_example_flow_is_valid(tmp_path: Path):
    f = tmp_path / "routing.yaml"
    f.write_text(HEAD + FLOW)
    cfg = load_config(f)
    assert set(cfg.ivr_flows[0].nodes) >= {"language", "interest", "zip", "qualified"}


# (case, replaced, replacement, path, message fragments, text that marks the reported line)
REFUSALS = [
    (
        "start-missing-node",
        "start: language",
        "start: langauge",
        "ivr_flows.0.start",
        ("unknown node 'langauge'", "did you mean language?"),
        "start: langauge",
    ),
    (
        "next-missing-node",
        "        next: monthly_bill\n      monthly_bill:",
        "        next: montly_bill\n      monthly_bill:",
        "ivr_flows.0.nodes.zip.next",
        ("unknown node 'montly_bill'", "did you mean monthly_bill?"),
        "next: montly_bill",
    ),
    (
        "option-missing-node",
        "          2: interest\n",
        "          2: intrest\n",
        "ivr_flows.0.nodes.interest.options.2",
        ("unknown node 'intrest'",),
        "2: intrest",
    ),
    (
        "option-next-missing-node",
        "1: {next: homeowner,",
        "1: {next: owner,",
        "ivr_flows.0.nodes.interest.options.1.next",
        ("unknown node 'owner'",),
        "1: {next: owner,",
    ),
    (
        "goto-missing-node",
        "goto: renter",
        "goto: renters",
        "ivr_flows.0.nodes.homeowner.branches.0.goto",
        ("unknown node 'renters'", "did you mean renter?"),
        "goto: renters",
    ),
    (
        "on-invalid-missing-node",
        "on_invalid: monthly_bill",
        "on_invalid: nowhere",
        "ivr_flows.0.nodes.zip.on_invalid",
        ("unknown node 'nowhere'",),
        "on_invalid: nowhere",
    ),
    (
        "unreachable-node",
        "goto: renter",
        "goto: low_bill",
        "ivr_flows.0.nodes.renter",
        ("never reached from start 'language'", "point a next, option or branch at it, or remove it"),
        "      renter:",
    ),
    (
        "answer-key-not-identifier",
        "answer_key: monthly_bill",
        "answer_key: monthly-bill",
        "ivr_flows.0.nodes.monthly_bill.answer_key",
        ("'monthly-bill' is not an answer key", "monthly_bill"),
        "answer_key: monthly-bill",
    ),
    (
        "unknown-operator",
        "when: {lt: 50}",
        "when: {less: 50}",
        "ivr_flows.0.nodes.monthly_bill.branches.0.when.less",
        ("unknown operator 'less'", "use one of: eq, ne"),
        "when: {less: 50}",
    ),
    (
        "operator-alias",
        "when: {lt: 50}",
        "when: {'<': 50}",
        "ivr_flows.0.nodes.monthly_bill.branches.0.when.<",
        ("unknown operator '<'", "did you mean lt?"),
        "when: {'<': 50}",
    ),
    (
        "operator-argument",
        "when: {lt: 50}",
        "when: {lt: lots}",
        "ivr_flows.0.nodes.monthly_bill.branches.0.when.lt",
        ("lt needs a number",),
        "when: {lt: lots}",
    ),
    (
        "unknown-operator-on-earlier-answer",
        'homeowner: {eq: "yes"}}',
        'homeowner: {equals: "yes"}}',
        "ivr_flows.0.nodes.monthly_bill.branches.1.when.homeowner.equals",
        ("unknown operator 'equals'", "did you mean eq?"),
        'homeowner: {equals: "yes"}}',
    ),
    (
        "menu-key-two-digits",
        "          9: {next: not_interested",
        "          10: {next: not_interested",
        "ivr_flows.0.nodes.interest.options.10",
        ("not a single phone key", "0-9, * or #"),
        "10: {next",
    ),
    (
        "menu-key-word",
        "          9: {next: not_interested",
        "          nine: {next: not_interested",
        "ivr_flows.0.nodes.interest.options.nine",
        ("'nine' is not a single phone key",),
        "nine: {next",
    ),
    (
        "unknown-node-type",
        "type: menu",
        "type: manu",
        "ivr_flows.0.nodes.interest.type",
        ("unknown node type 'manu'", "did you mean menu?"),
        "type: manu",
    ),
    (
        "bad-pattern",
        r"pattern: '\d{5}'",
        "pattern: '[0-9'",
        "ivr_flows.0.nodes.zip.validate.pattern",
        ("not a valid regular expression",),
        "pattern: '[0-9'",
    ),
    (
        "min-above-max",
        "{min: 0, max: 5000}",
        "{min: 500, max: 50}",
        "ivr_flows.0.nodes.monthly_bill.validate.min",
        ("min 500 is above max 50", "swap them"),
        "{min: 500, max: 50}",
    ),
    (
        "unknown-node-field",
        "        retries: 1\n",
        "        retry: 1\n",
        "ivr_flows.0.nodes.zip.retry",
        ("unknown field; did you mean retries?",),
        "retry: 1",
    ),
]


@pytest.mark.parametrize(("case", "old", "new", "path", "fragments", "marker"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_validation_refuses_with_file_line_path_and_fix(tmp_path: Path, case, old, new, path, fragments, marker):
    assert FLOW.count(old) == 1, case
    f, text, problems = problems_of(tmp_path, FLOW.replace(old, new))
    prefix = f"{f}:{line_of(text, marker)}: {path}: "
    hits = [p for p in problems if p.startswith(prefix)]
    assert hits, f"no problem starting {prefix!r} in:\n" + "\n".join(problems)
    assert any(all(x in h for x in fragments) and re.search(r" \(.+\)$", h) for h in hits), hits


def test_flow_without_end_node(tmp_path: Path):
    flow = """
ivr_flows:
  - id: solar
    start: ask
    nodes:
      ask:
        type: question
        prompt: "ZIP?"
        answer_key: zip
        next: ask
"""
    f, text, problems = problems_of(tmp_path, flow)
    assert any(p.startswith(f"{f}:{line_of(text, 'nodes:')}: ivr_flows.0.nodes: no end node") for p in problems), problems


def test_retry_loops_that_can_exit_are_allowed(tmp_path: Path):
    """A menu that repeats itself, and a question that loops back while a branch leads out, are fine."""
    flow = """
ivr_flows:
  - id: solar
    start: menu
    nodes:
      menu:
        type: menu
        prompt: "1 to continue, 2 to repeat"
        options: {1: ask, 2: menu}
      ask:
        type: question
        prompt: "Say a number above 10"
        answer_key: n
        branches: [{when: {gt: 10}, goto: done}]
        next: menu
      done: {type: end, result: qualified}
"""
    f = tmp_path / "ok.yaml"
    f.write_text(HEAD + flow)
    assert load_config(f).ivr_flows[0].start == "menu"


def test_loop_without_exit_is_refused(tmp_path: Path):
    flow = """
ivr_flows:
  - id: solar
    start: menu
    nodes:
      menu:
        type: menu
        prompt: "1 for a quote, 9 to leave"
        options: {1: zip, 9: bye}
      zip:
        type: question
        prompt: "ZIP?"
        answer_key: zip
        on_invalid: bill
        next: bill
      bill:
        type: question
        prompt: "Bill?"
        answer_key: bill
        branches: [{when: {lt: 50}, goto: zip}]
        next: zip
      bye: {type: end, result: disqualified}
"""
    f, text, problems = problems_of(tmp_path, flow)
    msg = next(p for p in problems if "loop without an exit" in p)
    assert msg.startswith(f"{f}:{line_of(text, '      zip:')}: ivr_flows.0.nodes.zip: "), problems
    assert "zip → bill → zip" in msg and msg.endswith("(add an option, branch or on_invalid that leads to an end node)")
    assert len(problems) == 1, problems


def test_loop_whose_only_way_out_is_invalid_input_is_refused(tmp_path: Path):
    """Ending on invalid input is a failure path, not an exit: the loop still has none."""
    flow = """
ivr_flows:
  - id: solar
    start: a
    nodes:
      a: {type: menu, prompt: "1", options: {1: b}}
      b: {type: menu, prompt: "2", options: {1: a}}
      done: {type: end, result: qualified}
"""
    f, text, problems = problems_of(tmp_path, flow)
    assert any(p.startswith(f"{f}:{line_of(text, '      a:')}: ivr_flows.0.nodes.a: loop without an exit") for p in problems)
    assert any("ivr_flows.0.nodes.done: node 'done' is never reached" in p for p in problems)
    assert sum("loop without an exit" in p for p in problems) == 1  # reported where the caller enters it


def test_shape_and_graph_problems_are_reported_together(tmp_path: Path):
    bad = FLOW.replace("answer_key: monthly_bill", "answer_key: 2bill").replace("goto: renter", "goto: renters")
    _, _, problems = problems_of(tmp_path, bad)
    assert any("ivr_flows.0.nodes.monthly_bill.answer_key: '2bill' is not an answer key" in p for p in problems)
    assert any("ivr_flows.0.nodes.homeowner.branches.0.goto: unknown node 'renters'" in p for p in problems)


def test_model_validate_applies_the_graph_checks_too():
    import yaml

    data = yaml.safe_load(HEAD + FLOW.replace("goto: renter", "goto: renters"))
    with pytest.raises(Exception, match="unknown node 'renters'"):
        RoutingConfig.model_validate(data)


def test_demo_config_flow_walks(demo_config_path: Path):
    cfg = load_config(demo_config_path)
    campaign = cfg.campaign_for_number("+18885550123")
    flows = {f.id: f for f in cfg.ivr_flows}
    if campaign is None or campaign.ivr is None:
        pytest.skip("the demo has no IVR flow on solar-ca")
    flow = flows[campaign.ivr]
    end = walk(flow, ("2", D), ("sí", S), ("90210", D), ("250", D))[-1]
    assert isinstance(end, Finished) and end.qualified
    # the answer keys are the ones the demo's buyer filters and traffic use
    assert end.answers == {"language": "es", "homeowner": "yes", "zip": "90210", "monthly_bill": "250"}


@st.composite
def random_flows(draw):
    """Random graphs of menus/questions/ends; some are invalid (unreachable nodes, loops without exit)."""
    n = draw(st.integers(1, 6))
    ends = draw(st.integers(1, 3))
    ids = [f"n{i}" for i in range(n)] + [f"e{i}" for i in range(ends)]
    target = st.sampled_from(ids)
    nodes: dict = {}
    for i in range(n):
        if draw(st.booleans()):
            keys = draw(st.lists(st.sampled_from(list("0123456789*#")), min_size=1, max_size=3, unique=True))
            nodes[f"n{i}"] = {
                "type": "menu",
                "prompt": "m",
                "retries": draw(st.integers(0, 2)),
                "options": {k: draw(target) for k in keys},
            }
        else:
            nodes[f"n{i}"] = {
                "type": "question",
                "prompt": "q",
                "answer_key": f"a{i}",
                "next": draw(target),
                "retries": draw(st.integers(0, 2)),
                "branches": [{"when": {"gte": draw(st.integers(0, 9))}, "goto": draw(target)}] if draw(st.booleans()) else [],
            }
        if draw(st.booleans()):
            nodes[f"n{i}"]["on_invalid"] = draw(target)
    for j in range(ends):
        nodes[f"e{j}"] = {"type": "end", "result": draw(st.sampled_from(["qualified", "disqualified"]))}
    reachable, todo = {"n0"}, ["n0"]  # keep what start reaches, so most flows are valid or have a loop to find
    while todo:
        for _, t in ivr_node_targets(nodes[todo.pop()]):
            if t not in reachable:
                reachable.add(t)
                todo.append(t)
    if not any(nodes[r]["type"] == "end" for r in reachable):
        nodes["e0"] = {"type": "end", "result": "qualified"}
        reachable.add("e0")
        nodes["n0"]["on_invalid"] = "e0"
    return {"id": "solar", "start": "n0", "max_steps": 40, "nodes": {k: v for k, v in nodes.items() if k in reachable}}


@settings(max_examples=300, deadline=None)
@given(raw=random_flows(), inputs=st.lists(INPUTS, max_size=50))
def test_random_valid_flows_always_finish(raw, inputs):
    import yaml

    data = yaml.safe_load(HEAD)
    data["ivr_flows"] = [raw]
    try:
        flow = RoutingConfig.model_validate(data).ivr_flows[0]
    except ValueError:
        return  # refused by validation: nothing to walk
    step = current(flow, start(flow))
    for text, kind in inputs + [("", D)] * flow.max_steps:
        if isinstance(step, Finished):
            break
        step = answer(flow, step.state, text, kind)
    assert isinstance(step, Finished) and step.state.steps <= flow.max_steps
