"""The IVR flow engine (docs/IVR.md): pure functions, no I/O, no clock.

A service keeps one `IvrState` per call (JSON-able: `to_dict`/`from_dict`) and
drives it with what the caller does:

    state = start(flow, language=None)        # the state at the start node
    step = current(flow, state)               # what to play now: Prompt or Finished
    step = answer(flow, step.state, "1", "digits")   # … until step is Finished

Each step carries the state to keep for the next answer. A `Finished` step holds
the outcome (qualified or not, the reason), the answers collected (these become
the call's `answers.*` for buyer filters) and the caller's language.

Invalid input (wrong key, failed validation, empty, or speech to a digits-only
node) re-prompts the same node with attempt+1; after `retries` re-prompts the
call goes to the node's `on_invalid`, or ends disqualified with reason
`invalid_input`. Every call ends within the flow's `max_steps` answers (reason
`max_steps`), so a caller cannot circle a menu forever.

Branch conditions use the routing answer-filter semantics
(eligibility.condition_failure): numeric comparison when both sides are numbers.

`flow_end(finished)` is what the end of a flow makes of the call (the answers
it carries on, the caller's ZIP, the reject detail): the ivr service and the
simulator both apply it, so they cannot disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from switchboard.core.caller import normalize_zip
from switchboard.core.config import (
    OPERATORS,
    IvrEndNode,
    IvrFlow,
    IvrLanguageOption,
    IvrMenuNode,
    IvrOption,
    IvrQuestionNode,
    IvrSetLanguageNode,
)
from switchboard.core.eligibility import condition_failure
from switchboard.core.reasons import DISQUALIFIED

InputKind = Literal["digits", "speech"]
Expects = Literal["digits", "speech", "digits_or_speech"]

INVALID_INPUT = "invalid_input"
MAX_STEPS = "max_steps"
NO_QUESTIONS = "no_questions"  # the reason of a flow without nodes


# ---------------------------------------------------------------- state and steps


@dataclass(frozen=True)
class IvrState:
    """Where one call is in its flow. `node` is the node being asked; when `done`, the end reached."""

    flow_id: str
    node: str
    language: str
    attempt: int = 1
    answers: Mapping[str, str] = field(default_factory=dict)
    steps: int = 0  # answers given so far (bounded by the flow's max_steps)
    done: bool = False
    qualified: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "node": self.node,
            "language": self.language,
            "attempt": self.attempt,
            "answers": dict(self.answers),
            "steps": self.steps,
            "done": self.done,
            "qualified": self.qualified,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IvrState:
        answers = d.get("answers") or {}
        if not isinstance(answers, Mapping):
            raise ValueError(f"IVR state answers must be a mapping, got {answers!r}")  # noqa: TRY004 (bad stored data, like a bad value)
        return cls(
            flow_id=str(d["flow_id"]),
            node=str(d["node"]),
            language=str(d["language"]),
            attempt=int(d.get("attempt", 1)),
            answers={str(k): str(v) for k, v in answers.items()},
            steps=int(d.get("steps", 0)),
            done=bool(d.get("done", False)),
            qualified=bool(d.get("qualified", False)),
            reason=str(d.get("reason", "")),
        )


@dataclass(frozen=True)
class Prompt:
    """Ask the caller: say `text`, gather `expects`; `num_digits` is 1 for menus (a Gather hint)."""

    node: str
    text: str
    expects: Expects
    attempt: int
    language: str
    state: IvrState
    num_digits: int | None = None


@dataclass(frozen=True)
class Finished:
    """The flow is over. `text` is the end node's prompt ("" when it has none)."""

    qualified: bool
    reason: str
    answers: dict[str, str]
    language: str
    node: str
    text: str
    state: IvrState


IvrStep = Prompt | Finished


# ---------------------------------------------------------------- the engine


def start(flow: IvrFlow, language: str | None = None) -> IvrState:
    """The state of a new call at the flow's start node (already finished for a flow without nodes)."""
    lang = language or flow.language
    if not flow.nodes or flow.start is None:
        return IvrState(flow.id, "", lang, done=True, qualified=True, reason=NO_QUESTIONS)
    return _enter(flow, IvrState(flow.id, flow.start, lang), flow.start)


def current(flow: IvrFlow, state: IvrState) -> IvrStep:
    """What to play for `state`: the node's prompt (its retry prompt after an invalid answer), or the end."""
    _check_state(flow, state)
    if state.done:
        return _finished(flow, state)
    node = flow.nodes[state.node]
    assert not isinstance(node, IvrEndNode)  # entering an end node finishes the state
    text_of = node.retry_prompt if state.attempt > 1 and node.retry_prompt is not None else node.prompt
    return Prompt(
        node=state.node,
        text=prompt_text(text_of, state.language, flow.language),
        expects=node.input,
        attempt=state.attempt,
        language=state.language,
        state=state,
        num_digits=1 if isinstance(node, (IvrMenuNode, IvrSetLanguageNode)) else None,
    )


def answer(flow: IvrFlow, state: IvrState, input: str, kind: InputKind) -> IvrStep:
    """Apply the caller's `input` (DTMF digits, or speech as text from the edge) and return the next step."""
    _check_state(flow, state)
    if state.done:
        return _finished(flow, state)  # a repeated answer after the end changes nothing
    if kind not in ("digits", "speech"):
        raise ValueError(f"input kind must be 'digits' or 'speech', got {kind!r}")
    node = flow.nodes[state.node]
    assert not isinstance(node, IvrEndNode)  # entering an end node finishes the state
    state = replace(state, steps=state.steps + 1)
    accepted = None if (kind == "speech" and node.input == "digits") or (kind == "digits" and node.input == "speech") else input
    if isinstance(node, IvrMenuNode):
        state = _menu(flow, node, state, accepted, kind)
    elif isinstance(node, IvrSetLanguageNode):
        state = _set_language(flow, node, state, accepted, kind)
    elif isinstance(node, IvrQuestionNode):
        state = _question(flow, node, state, accepted, kind)
    if not state.done and state.steps >= flow.max_steps:
        state = replace(state, done=True, qualified=False, reason=MAX_STEPS)
    return current(flow, state)


# ---------------------------------------------------------------- node kinds


def _menu(flow: IvrFlow, node: IvrMenuNode, state: IvrState, raw: str | None, kind: InputKind) -> IvrState:
    key = None if raw is None else _choose_key(node.options, raw, kind, lambda o: _option_words(o))
    if key is None:
        return _invalid(flow, node, state)
    option = node.options[key]
    target = option if isinstance(option, str) else option.next
    if node.answer_key:
        value = option.value if isinstance(option, IvrOption) and option.value is not None else key
        state = replace(state, answers={**state.answers, node.answer_key: value})
    return _enter(flow, state, target)


def _set_language(flow: IvrFlow, node: IvrSetLanguageNode, state: IvrState, raw: str | None, kind: InputKind) -> IvrState:
    key = None if raw is None else _choose_key(node.options, raw, kind, _language_words)
    if key is None:
        return _invalid(flow, node, state)
    option = node.options[key]
    lang = option if isinstance(option, str) else option.language
    state = replace(state, language=lang, answers={**state.answers, "language": lang})
    return _enter(flow, state, node.next)


def _question(flow: IvrFlow, node: IvrQuestionNode, state: IvrState, raw: str | None, kind: InputKind) -> IvrState:
    value = None if raw is None else validated_answer(node, raw, kind)
    if value is None:
        return _invalid(flow, node, state)
    answers = {**state.answers, node.answer_key: value}
    state = replace(state, answers=answers)
    for branch in node.branches:
        if branch_holds(branch.when, node.answer_key, answers):
            return _enter(flow, state, branch.goto)
    return _enter(flow, state, node.next)


def _invalid(flow: IvrFlow, node: IvrMenuNode | IvrQuestionNode | IvrSetLanguageNode, state: IvrState) -> IvrState:
    if state.attempt <= node.retries:
        return replace(state, attempt=state.attempt + 1)
    if node.on_invalid is not None:
        return _enter(flow, state, node.on_invalid)
    return replace(state, done=True, qualified=False, reason=INVALID_INPUT)


def _enter(flow: IvrFlow, state: IvrState, node_id: str) -> IvrState:
    node = flow.nodes[node_id]
    if isinstance(node, IvrEndNode):
        return replace(
            state, node=node_id, attempt=1, done=True, qualified=node.result == "qualified", reason=node.reason or node_id
        )
    return replace(state, node=node_id, attempt=1)


def _finished(flow: IvrFlow, state: IvrState) -> Finished:
    node = flow.nodes.get(state.node) if state.node else None
    text = ""
    if isinstance(node, IvrEndNode) and node.prompt is not None and state.reason not in (INVALID_INPUT, MAX_STEPS):
        text = prompt_text(node.prompt, state.language, flow.language)
    return Finished(
        qualified=state.qualified,
        reason=state.reason,
        answers=dict(state.answers),
        language=state.language,
        node=state.node if isinstance(node, IvrEndNode) else "",
        text=text,
        state=state,
    )


def _check_state(flow: IvrFlow, state: IvrState) -> None:
    if state.flow_id != flow.id:
        raise ValueError(f"state belongs to IVR flow {state.flow_id!r}, not {flow.id!r}")
    if state.node and state.node not in flow.nodes:
        raise ValueError(f"state is at node {state.node!r}, which flow {flow.id!r} no longer has")
    if not state.done and not state.node:
        raise ValueError("state has no node and is not finished")


# ---------------------------------------------------------------- the end of a flow


@dataclass(frozen=True)
class FlowEnd:
    """What a finished flow makes of the call.

    `answers` are the call data to add: the flow's answers, and the caller's `language` unless the
    flow stored one itself. Qualified: ivr.completed carries them; a `zip` answer that is a ZIP code
    is normalised (90210-1234 → 90210) and is also the caller's ZIP (`zip`, which buyer filters and
    pings read), one that is not (the flow's own validation let it through) is left out. Disqualified:
    the answers as given, and `detail` for the call.rejected `disqualified`.
    """

    qualified: bool
    answers: dict[str, str]
    zip: str | None = None
    detail: str = ""


def hung_up_detail(state: IvrState | None) -> str:
    """The call.rejected detail of a caller who hung up in the IVR (reason ABANDONED): where they were."""
    where = f"at IVR node {state.node!r}" if state is not None else "before qualifying"
    return f"the caller hung up in the IVR, {where}"


def flow_end(step: Finished) -> FlowEnd:
    """The call data and outcome of a finished flow (FlowEnd)."""
    answers = dict(step.answers)
    answers.setdefault("language", step.language)
    if not step.qualified:
        where = step.node or step.state.node
        return FlowEnd(False, answers, detail=f"IVR flow {step.state.flow_id} ended at {where!r}: {step.reason or DISQUALIFIED}")
    zip_code = normalize_zip(answers["zip"]) if "zip" in answers else None
    if zip_code is not None:
        answers["zip"] = zip_code
    else:
        answers.pop("zip", None)
    return FlowEnd(True, answers, zip_code)


# ---------------------------------------------------------------- prompts


def prompt_text(prompt: str | Mapping[str, str], language: str, default: str) -> str:
    """The prompt in `language`, else its base language (es-MX → es), else the flow's default, else any."""
    if isinstance(prompt, str):
        return prompt
    for lang in (language, language.split("-")[0], default, default.split("-")[0]):
        if lang in prompt:
            return prompt[lang]
    return next(iter(prompt.values()), "")


# ---------------------------------------------------------------- input normalisation

_DIGIT_WORDS = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"thousand": 1000, "million": 1_000_000}
_FILLER = {"and", "dollars", "dollar", "bucks", "about", "around", "roughly", "um", "uh", "its", "it's", "is", "my"}
_KEY_WORDS = {
    **{str(v): [w for w, n in _DIGIT_WORDS.items() if n == v and w != "o"] for v in range(10)},
    "*": ["star", "asterisk"],
    "#": ["pound", "hash", "hashtag"],
}
_YES = {"yes", "yeah", "yep", "yup", "sure", "correct", "right", "affirmative", "absolutely", "si", "of course"}
_NO = {"no", "nope", "nah", "negative", "not really"}
_LANGUAGE_NAMES = {
    "en": ["english", "ingles"],
    "es": ["spanish", "espanol", "castellano"],
    "fr": ["french", "francais"],
    "pt": ["portuguese", "portugues"],
    "zh": ["chinese", "mandarin"],
    "vi": ["vietnamese"],
}


def normalize_speech(text: str) -> str:
    """Lower case, no accents, no punctuation (except a decimal point), single spaces: 'Sí, ¡Español!' → 'si espanol'."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,250 → 1250
    text = re.sub(r"[^\w\s.']|_", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep only decimal points
    text = text.replace("'", "")
    return " ".join(text.split())


def spoken_number(text: str) -> str | None:
    """The number in normalised speech: digits ('250'), digit words ('nine oh two one oh' → '90210')
    or simple cardinals ('two hundred fifty' → '250'); None when the text is not just a number."""
    words = [w for w in text.replace("-", " ").split() if w not in _FILLER]
    if not words:
        return None
    if len(words) == 1 and words[0] in ("o", "oh"):
        return None  # "oh" alone is an interjection, not zero
    if all(w in _DIGIT_WORDS or w.isdigit() for w in words):
        return "".join(str(_DIGIT_WORDS[w]) if w in _DIGIT_WORDS else w for w in words)
    if len(words) == 1 and re.fullmatch(r"\d+\.\d+", words[0]):
        return words[0]
    total, part = 0, 0
    for i, w in enumerate(words):
        if w in ("o", "oh"):
            return None
        if w == "a" and i + 1 < len(words) and words[i + 1] in ("hundred", *_SCALES):
            part += 1
        elif w in _DIGIT_WORDS:
            part += _DIGIT_WORDS[w]
        elif w in _TEENS:
            part += _TEENS[w]
        elif w in _TENS:
            part += _TENS[w]
        elif w.isdigit():
            part += int(w)
        elif w == "hundred":
            part = max(part, 1) * 100
        elif w in _SCALES:
            total += max(part, 1) * _SCALES[w]
            part = 0
        else:
            return None
    return str(total + part)


def _digits(raw: str) -> str:
    """DTMF as received; a trailing # (the usual 'finish' key) is not part of a multi-digit answer."""
    raw = raw.strip()
    return raw[:-1] if len(raw) > 1 and raw.endswith("#") else raw


def _contains(text: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def _choose_key(options: Mapping[str, Any], raw: str, kind: InputKind, words_of: Any) -> str | None:
    """The option key chosen by DTMF or by speech (its key, the key's name, or one of its words)."""
    if kind == "digits":
        key = _digits(raw)
        return key if key in options else (raw.strip() if raw.strip() in options else None)
    text = normalize_speech(raw)
    if not text:
        return None
    words = {
        key: {normalize_speech(w) for w in (key, *_KEY_WORDS.get(key, []), *words_of(opt))} - {""} for key, opt in options.items()
    }
    exact = [k for k, ws in words.items() if text in ws]
    if len(exact) == 1:
        return exact[0]
    contained = [k for k, ws in words.items() if any(_contains(text, w) for w in ws)]
    return contained[0] if len(contained) == 1 else None  # two options named: ask again


def _option_words(option: str | IvrOption) -> list[str]:
    if isinstance(option, str):
        return []
    return [*option.say, *([option.value] if option.value else [])]


def _language_words(option: str | IvrLanguageOption) -> list[str]:
    lang = option if isinstance(option, str) else option.language
    say = [] if isinstance(option, str) else option.say
    return [*say, lang, *_LANGUAGE_NAMES.get(lang.split("-")[0], [])]


def yes_no(raw: str, kind: InputKind) -> str | None:
    """'yes'/'no' from 1/2 or from speech that says one of them (not both)."""
    if kind == "digits":
        return {"1": "yes", "2": "no"}.get(_digits(raw))
    text = normalize_speech(raw)
    said_yes = any(_contains(text, w) for w in _YES)
    said_no = any(_contains(text, w) for w in _NO)
    return "yes" if said_yes and not said_no else "no" if said_no and not said_yes else None


def _as_number(value: str) -> Decimal | None:
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def validated_answer(node: IvrQuestionNode, raw: str, kind: InputKind) -> str | None:
    """The answer to store for `raw`, or None when it is invalid for the question."""
    rule = node.validation
    if rule is not None and rule.yes_no:
        return yes_no(raw, kind)
    if kind == "digits":
        value = _digits(raw)
        if not re.fullmatch(r"[0-9*#]+", value):
            return None
    else:
        text = normalize_speech(raw)
        value = spoken_number(text) or text
    if not value:
        return None
    if rule is None:
        return value
    if rule.choices is not None:
        norm = normalize_speech(value)
        exact = [c for c in rule.choices if normalize_speech(c) == norm]
        contained = [c for c in rule.choices if kind == "speech" and _contains(norm, normalize_speech(c))]
        chosen = exact or (contained if len(contained) == 1 else [])
        if not chosen:
            return None
        value = chosen[0]
    if rule.min is not None or rule.max is not None:
        number = _as_number(value)
        if number is None and kind == "speech":  # "about 250 a month": the one number said
            found = re.findall(r"\d+(?:\.\d+)?", value)
            number = _as_number(found[0]) if len(found) == 1 else None
            value = found[0] if number is not None else value
        if number is None:
            return None
        if (rule.min is not None and number < rule.min) or (rule.max is not None and number > rule.max):
            return None
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        return None
    return value


# ---------------------------------------------------------------- branches


def branch_holds(when: Mapping[Any, Any], answer_key: str, answers: Mapping[str, str]) -> bool:
    """Every part of `when` holds: `{op: arg}` tests this question's answer, `{key: {op: arg}}` an earlier answer."""
    for key, arg in when.items():
        if isinstance(arg, Mapping):
            ((op, op_arg),) = arg.items()
            if condition_failure(str(key), op, op_arg, answers) is not None:
                return False
        elif key in OPERATORS:
            if condition_failure(answer_key, key, arg, answers) is not None:
                return False
        else:
            return False  # refused by validation; never taken
    return True
