"""IVR flows (docs/IVR.md): the node models, and the checks of a flow's graph.

The models check each node's shape; `ivr_flow_problems` checks the graph (missing targets,
unreachable nodes, loops without an exit) on the raw data, so graph problems are reported
together with shape problems. The engine that walks a flow is core/ivr.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from switchboard.core.config.conditions import AnswerKey, _condition_problems
from switchboard.core.config.types import FieldPath, FieldProblems, _did_you_mean, _Model, _yaml_text, show_value

IVR_NODE_TYPES = ("menu", "question", "set_language", "end")
IVR_INPUTS = ("digits", "speech", "digits_or_speech")
DTMF_KEYS = tuple("0123456789*#")
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


IvrValue = Annotated[str, BeforeValidator(_yaml_text)]


def _check_language(v: str) -> str:
    if not _LANGUAGE.match(v):
        raise ValueError(f"{v!r} is not a language code (write it like en, es or en-US)")
    return v


LanguageCode = Annotated[str, AfterValidator(_check_language)]


def _check_prompt(v: Any) -> Any:
    """A prompt is text, or a mapping language → text; never empty."""
    if isinstance(v, str):
        if not v.strip():
            raise ValueError('empty prompt (write what the caller hears, e.g. "Press 1 for English")')
        return v
    if isinstance(v, Mapping):
        problems: list[tuple[FieldPath, str]] = []
        if not v:
            problems.append(((), 'no text in any language (write it like {en: "Hello", es: "Hola"})'))
        for lang, text in v.items():
            if not isinstance(lang, str) or not _LANGUAGE.match(lang):
                problems.append(((lang,), f"{lang!r} is not a language code (write it like en, es or en-US)"))
            elif not isinstance(text, str) or not text.strip():
                problems.append(
                    ((lang,), f'expected the prompt text in {lang}, got {show_value(text)} (write it in quotes, e.g. "Hello")')
                )
        if problems:
            raise FieldProblems(problems)
        return dict(v)
    raise ValueError(
        f'expected text or a mapping language → text, got {show_value(v)} (write "Hello" or {{en: "Hello", es: "Hola"}})'
    )


IvrPrompt = Annotated[str | dict[str, str], BeforeValidator(_check_prompt)]


def _check_keys(v: Any) -> Any:
    """Menu options are keyed by one DTMF key; YAML reads an unquoted 1: as the number 1."""
    if not isinstance(v, Mapping):
        return v
    problems: list[tuple[FieldPath, str]] = []
    out: dict[str, Any] = {}
    for key, option in v.items():
        text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
        if not isinstance(text, str) or text not in DTMF_KEYS:
            problems.append(((key,), f'{key!r} is not a single phone key (use one of 0-9, * or #; quote * and # like "*":)'))
            continue
        out[text] = option
    if not v:
        problems.append(((), 'no options (add at least one, e.g. "1": next-node)'))
    if problems:
        raise FieldProblems(problems)
    return out


# ---------------------------------------------------------------- nodes


class IvrOption(_Model):
    next: str
    value: IvrValue | None = None  # stored under the menu's answer_key; default the key pressed
    say: list[IvrValue] = []  # spoken words that choose this option


class IvrLanguageOption(_Model):
    language: LanguageCode
    say: list[IvrValue] = []


class IvrValidate(_Model):
    pattern: str | None = None  # a regular expression the whole answer must match
    min: Decimal | None = None  # numeric answers: inclusive bounds
    max: Decimal | None = None
    choices: list[IvrValue] | None = Field(None, min_length=1)  # one of these (case-insensitive)
    yes_no: bool = False  # yes/no question: 1 or spoken yes → "yes", 2 or spoken no → "no"

    @model_validator(mode="after")
    def _consistent(self) -> IvrValidate:
        problems: list[tuple[FieldPath, str]] = []
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                problems.append((("pattern",), f"not a valid regular expression: {exc} (write it like '^\\d{{5}}$')"))
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append((("min",), f"min {self.min} is above max {self.max} (swap them)"))
        if self.yes_no and (self.choices or self.pattern or self.min is not None or self.max is not None):
            problems.append((("yes_no",), "yes_no takes no other rule (remove pattern/min/max/choices, or yes_no)"))
        if problems:
            raise FieldProblems(problems)
        return self


class IvrBranch(_Model):
    when: dict[Any, Any]
    goto: str

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, v: Any) -> Any:
        problems = _condition_problems(v)
        if problems:
            raise FieldProblems(problems)
        return v


class _IvrGather(_Model):
    prompt: IvrPrompt
    retry_prompt: IvrPrompt | None = None  # said instead of prompt after an invalid answer
    input: Literal["digits", "speech", "digits_or_speech"] = "digits_or_speech"
    retries: int = Field(2, ge=0, le=10)  # re-prompts after an invalid answer
    on_invalid: str | None = None  # where to go when retries run out; absent: end disqualified (invalid_input)


class IvrMenuNode(_IvrGather):
    type: Literal["menu"]
    options: dict[str, str | IvrOption]
    answer_key: AnswerKey | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        return _check_keys(v)


class IvrQuestionNode(_IvrGather):
    type: Literal["question"]
    answer_key: AnswerKey
    validation: IvrValidate | None = Field(None, alias="validate")
    branches: list[IvrBranch] = []  # first whose `when` holds wins
    next: str  # when no branch holds


class IvrSetLanguageNode(_IvrGather):
    type: Literal["set_language"]
    options: dict[str, LanguageCode | IvrLanguageOption]
    next: str

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        return _check_keys(v)


class IvrEndNode(_Model):
    type: Literal["end"]
    result: Literal["qualified", "disqualified"]
    reason: str = ""
    prompt: IvrPrompt | None = None  # said before the call moves on (or hangs up)


def _check_node_type(v: Any) -> Any:
    if isinstance(v, Mapping):
        t = v.get("type")
        if t is None:
            raise FieldProblems([(("type",), f"a node needs a type (add `type:` with one of: {', '.join(IVR_NODE_TYPES)})")])
        if t not in IVR_NODE_TYPES:
            raise FieldProblems(
                [
                    (
                        ("type",),
                        f"unknown node type {show_value(t)}{_did_you_mean(t, IVR_NODE_TYPES)} (use one of: {', '.join(IVR_NODE_TYPES)})",
                    )
                ]
            )
    return v


IvrNode = Annotated[
    IvrMenuNode | IvrQuestionNode | IvrSetLanguageNode | IvrEndNode,
    Field(discriminator="type"),
    BeforeValidator(_check_node_type),
]


# ---------------------------------------------------------------- flows and their graph


def _check_node_ids(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return v
    bad: list[tuple[FieldPath, str]] = [
        ((k,), f"{k!r} is not a node id (letters, digits, _ and - only, e.g. ask_zip)")
        for k in v
        if not isinstance(k, str) or not _NODE_ID.match(k)
    ]
    if bad:
        raise FieldProblems(bad)
    return v


class IvrFlow(_Model):
    id: str
    language: LanguageCode = "en"  # prompts are said in this language until a set_language node changes it
    start: str | None = None
    max_steps: int = Field(50, ge=1)  # answers per call before it ends disqualified (max_steps); bounds menu loops
    # A flow without nodes asks nothing and qualifies every call (a campaign can name its flow before it is written).
    nodes: dict[str, IvrNode] = {}

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_ids(cls, v: Any) -> Any:
        return _check_node_ids(v)


def ivr_node_targets(node: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """(sub-path, node id) of every node `node` can go to; tolerant of bad shapes (raw or dumped data)."""
    out: list[tuple[FieldPath, str]] = []
    kind = node.get("type")
    options = node.get("options")
    if kind == "menu" and isinstance(options, Mapping):
        for key, option in options.items():
            if isinstance(option, str):
                out.append((("options", key), option))
            elif isinstance(option, Mapping) and isinstance(option.get("next"), str):
                out.append((("options", key, "next"), option["next"]))
    branches = node.get("branches")
    if isinstance(branches, list):
        for i, b in enumerate(branches):
            if isinstance(b, Mapping) and isinstance(b.get("goto"), str):
                out.append((("branches", i, "goto"), b["goto"]))
    for name in ("next", "on_invalid"):
        if isinstance(node.get(name), str) and kind != "end":
            out.append(((name,), node[name]))
    return out


def ivr_flow_problems(flow: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """The graph of one flow (raw data): targets exist, every node is reachable, every reachable node can end."""
    nodes = flow.get("nodes")
    start = flow.get("start")
    if not nodes and start is None:
        return []  # the pass-through flow (no nodes, no start)
    if not isinstance(nodes, Mapping):
        if nodes is None:
            return [(("nodes",), "a flow with a start needs nodes (add `nodes:` with at least an end node, or remove start)")]
        return []  # a shape problem pydantic reports
    ids = [k for k in nodes if isinstance(k, str)]
    problems: list[tuple[FieldPath, str]] = []
    if start is None:
        problems.append(
            (("start",), f"required field is missing (add `start: <node id>`, e.g. start: {ids[0] if ids else 'welcome'})")
        )
    elif isinstance(start, str) and start not in nodes:
        problems.append((("start",), f"unknown node {start!r}{_did_you_mean(start, ids)} (start at one of: {', '.join(ids)})"))
    edges: dict[str, list[str]] = {}
    ends: set[str] = set()
    for nid in ids:
        node = nodes[nid]
        if not isinstance(node, Mapping):
            ends.add(nid)  # a shape problem: reported there, not as a trap
            continue
        if node.get("type") not in ("menu", "question", "set_language"):
            ends.add(nid)  # end nodes, and unknown types (reported by the shape check)
        edges[nid] = []
        targets = ivr_node_targets(node)
        if not targets:
            ends.add(nid)  # a missing next/options: reported by the shape check, not as a trap
        for sub, target in targets:
            if target in nodes:
                edges[nid].append(target)
            else:
                ends.add(nid)  # reported as an unknown node below, not again as a trap
                problems.append(
                    (
                        ("nodes", nid, *sub),
                        f"unknown node {target!r}{_did_you_mean(target, ids)} (point it at one of: {', '.join(ids)})",
                    )
                )
    if not any(isinstance(nodes[n], Mapping) and nodes[n].get("type") == "end" for n in ids):
        problems.append(
            (("nodes",), "no end node: no call could ever finish (add one, e.g. done: {type: end, result: qualified})")
        )
        return problems
    if not (isinstance(start, str) and start in nodes):
        return problems
    reachable = _reach([start], edges)
    for nid in ids:
        if nid not in reachable:
            problems.append(
                (
                    ("nodes", nid),
                    f"node {nid!r} is never reached from start {start!r} (point a next, option or branch at it, or remove it)",
                )
            )
    incoming: dict[str, list[str]] = {n: [] for n in ids}
    for src, dests in edges.items():
        for t in dests:
            incoming[t].append(src)
    can_end = _reach(list(ends), incoming)
    trapped = reachable - can_end
    for nid in ids:  # report where a caller enters the trap, once per entry
        if nid not in trapped or not (nid == start or any(p in reachable and p not in trapped for p in incoming[nid])):
            continue
        loop = _cycle_from(nid, edges, trapped)
        problems.append(
            (
                ("nodes", nid),
                (
                    f"loop without an exit: from {nid!r} the call can only go round {' → '.join(loop)} and never reach an end node "
                    "(add an option, branch or on_invalid that leads to an end node)"
                ),
            )
        )
    return problems


def _reach(roots: list[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(roots)
    todo = list(roots)
    while todo:
        for nxt in edges.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycle_from(nid: str, edges: Mapping[str, list[str]], within: set[str]) -> list[str]:
    """A path from `nid` that comes back to a node already on it, for the message (trapped nodes always have one)."""
    path = [nid]
    while True:
        nxt = next((t for t in edges.get(path[-1], []) if t in within), None)
        if nxt is None:
            return path
        path.append(nxt)
        if nxt in path[:-1]:
            return path
