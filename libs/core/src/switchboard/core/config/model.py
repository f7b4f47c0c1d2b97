"""`RoutingConfig`, the whole configuration, and the checks that span its sections.

`reference_problems` runs on the raw (or dumped) data: unique ids, and every id a section names
(a campaign's publisher and IVR flow, a tier's buyers and queue, an agent's queues, the
simulation's entries) defined where it should be; each flow's graph is checked too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from switchboard.core.config.crm import CrmEndpoint
from switchboard.core.config.ivr import IvrFlow, ivr_flow_problems
from switchboard.core.config.queues import Agent, Queue
from switchboard.core.config.routing import Blocklist, Buyer, Campaign, Publisher
from switchboard.core.config.simulation import Simulation, simulation_reference_problems
from switchboard.core.config.types import _SECTION_NOUN, LIST_SECTIONS, FieldPath, FieldProblems, _did_you_mean, _items, _Model


class RoutingConfig(_Model):
    version: Literal[1] = 1
    publishers: list[Publisher] = []
    buyers: list[Buyer] = []
    campaigns: list[Campaign] = []
    queues: list[Queue] = []
    agents: list[Agent] = []
    ivr_flows: list[IvrFlow] = []
    blocklist: Blocklist = Blocklist()  # global: applies to every campaign
    simulation: Simulation | None = None  # the offline model of `switchboard simulate` (docs/SIMULATION.md)
    crm_endpoints: list[CrmEndpoint] = []  # CRMs that get cti events as signed webhooks (docs/CONFIG.md#crm_endpoints)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        if isinstance(v, bool) or v != 1:
            raise ValueError(f"version {v!r} is not supported (set `version: 1`)")
        return v

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> RoutingConfig:
        # config_problems (the file loader's way in) checks references on the raw data, to report them with
        # shape errors; skip the second pass.
        if info.context and info.context.get("references_checked"):
            return self
        # exclude_unset: what was written, as in the raw pass (a setting at its default was not "set").
        problems = reference_problems(self.model_dump(exclude_unset=True))
        if problems:
            raise FieldProblems(problems)
        return self

    # Lookups used by every service.
    def campaign_for_number(self, dialed: str) -> Campaign | None:
        for c in self.campaigns:
            if dialed in c.numbers:
                return c
        return None

    def campaign(self, campaign_id: str) -> Campaign:
        return next(c for c in self.campaigns if c.id == campaign_id)

    def buyer(self, buyer_id: str) -> Buyer:
        return next(b for b in self.buyers if b.id == buyer_id)

    def publisher(self, publisher_id: str) -> Publisher:
        return next(p for p in self.publishers if p.id == publisher_id)

    def queue(self, queue_id: str) -> Queue:
        return next(q for q in self.queues if q.id == queue_id)


def _ids(data: Mapping[str, Any], section: str) -> set[Any]:
    return {x["id"] for _, x in _items(data, section) if isinstance(x.get("id"), str)}


def _seq(value: Any) -> list[tuple[int, Any]]:
    return [(i, x) for i, x in enumerate(value) if isinstance(x, str)] if isinstance(value, list) else []


def reference_problems(data: Mapping[str, Any], where: Callable[[FieldPath], str] = lambda p: "") -> list[tuple[FieldPath, str]]:
    """Cross-references and uniqueness over the raw (or dumped) configuration, tolerant of bad shapes.

    Runs on raw data so its problems are reported together with shape problems.
    `where(path)` renders a location ("a.yaml:12") for messages that mention another place.
    """
    problems: list[tuple[FieldPath, str]] = []

    def also(path: FieldPath) -> str:
        w = where(path)
        return f" at {w}" if w else ""

    for section in LIST_SECTIONS:
        first: dict[str, int] = {}
        for i, item in _items(data, section):
            ident = item.get("id")
            if not isinstance(ident, str):
                continue
            if ident in first:
                problems.append(
                    (
                        (section, i, "id"),
                        (
                            f"duplicate {_SECTION_NOUN[section]} id {ident!r}, first defined{also((section, first[ident], 'id'))} "
                            "(ids must be unique: rename or remove one)"
                        ),
                    )
                )
            else:
                first[ident] = i

    buyers, publishers, queues, flows = (_ids(data, s) for s in ("buyers", "publishers", "queues", "ivr_flows"))

    def unknown(kind: str, section: str, ident: str, known: set[Any], action: str) -> str:
        return f"unknown {kind} {ident!r}{_did_you_mean(ident, known)} (define it under {section}, or {action})"

    number_owner: dict[str, tuple[str, FieldPath]] = {}
    for ci, c in _items(data, "campaigns"):
        pub = c.get("publisher")
        if isinstance(pub, str) and pub not in publishers:
            problems.append(
                (
                    ("campaigns", ci, "publisher"),
                    unknown("publisher", "publishers", pub, publishers, "use an existing publisher id"),
                )
            )
        ivr = c.get("ivr")
        if isinstance(ivr, str) and ivr not in flows:
            problems.append(
                (("campaigns", ci, "ivr"), unknown("IVR flow", "ivr_flows", ivr, flows, "remove `ivr` from the campaign"))
            )
        for ni, n in _seq(c.get("numbers")):
            path: FieldPath = ("campaigns", ci, "numbers", ni)
            if n in number_owner:
                owner, other = number_owner[n]
                same = owner == c.get("id")
                problems.append(
                    (
                        path,
                        f"tracking number {n} is listed twice in this campaign (remove one)"
                        if same
                        else f"tracking number {n} already belongs to campaign {owner!r}{also(other)} "
                        "(a number routes to one campaign: remove it from one of them)",
                    )
                )
            else:
                number_owner[n] = (str(c.get("id")), path)
        routing = c.get("routing")
        if not isinstance(routing, Mapping):
            continue
        for ti, t in _items(routing, "tiers"):
            tier_path: FieldPath = ("campaigns", ci, "routing", "tiers", ti)
            for bi, b in _seq(t.get("buyers")):
                if b not in buyers:
                    problems.append(
                        ((*tier_path, "buyers", bi), unknown("buyer", "buyers", b, buyers, "remove it from the tier"))
                    )
            q = t.get("queue")
            if isinstance(q, str) and q not in queues:
                problems.append(
                    ((*tier_path, "queue"), unknown("queue", "queues", q, queues, "point the tier at an existing queue"))
                )
    for pi, p in _items(data, "publishers"):
        for bi, b in _seq(p.get("blocked_buyers")):
            if b not in buyers:
                problems.append(
                    (
                        ("publishers", pi, "blocked_buyers", bi),
                        unknown("buyer", "buyers", b, buyers, "remove it from blocked_buyers"),
                    )
                )
    for ai, a in _items(data, "agents"):
        for qi, q in _seq(a.get("queues")):
            if q not in queues:
                problems.append(
                    (("agents", ai, "queues", qi), unknown("queue", "queues", q, queues, "remove it from the agent's queues"))
                )
        # A location nothing matches on would be silently ignored: refused, with the two ways out.
        if a.get("location") and isinstance(a.get("queues"), list):
            matching = {str(q.get("id")) for _, q in _items(data, "queues") if "location" in (q.get("match") or [])}
            if not any(q in matching for _, q in _seq(a.get("queues"))):
                problems.append(
                    (
                        ("agents", ai, "location"),
                        "location is set but no queue of this agent matches on location, so nothing would read it "
                        "(add location to the match of one of its queues, or remove location)",
                    )
                )
    campaigns = _ids(data, "campaigns")
    # Overflow (docs/ACD.md): a queue tier gives calls on to the tiers after it. A queue tier naming a
    # queue the campaign already queued in earlier would take a call back where it came from.
    overflows_to_later: set[str] = set()  # queues some campaign has tiers after
    for ci, c in _items(data, "campaigns"):
        routing = c.get("routing")
        if not isinstance(routing, Mapping):
            continue
        tiers = _items(routing, "tiers")
        seen_queues: dict[str, int] = {}
        for ti, t in tiers:
            q = t.get("queue")
            if t.get("strategy") != "queue" or not isinstance(q, str):
                continue
            if q in seen_queues:
                problems.append(
                    (
                        ("campaigns", ci, "routing", "tiers", ti, "queue"),
                        f"queue {q!r} is already tier {seen_queues[q]} of this campaign: a call it gives back would be "
                        "queued there again (point this tier at another queue, or remove it)",
                    )
                )
            seen_queues.setdefault(q, ti)
            if ti + 1 < len(routing.get("tiers") or []):
                overflows_to_later.add(q)
    for qi, q in _items(data, "queues"):
        for key in ("overflow_after_s", "overflow_when_projected_wait_s"):
            if q.get(key) is not None and q.get("id") not in overflows_to_later:
                problems.append(
                    (
                        ("queues", qi, key),
                        f"{key} is set but no campaign has tiers after this queue's tier, so no call could overflow "
                        f"(add tiers after the queue tier, or remove {key})",
                    )
                )
    problems.extend(_dead_tier_problems(data))
    problems.extend(_callback_problems(data))
    problems.extend(_announcement_language_problems(data))
    for qi, q in _items(data, "queues"):
        for ri, rule in _items(q, "priority"):
            when = rule.get("when")
            if not isinstance(when, Mapping):
                continue
            for key, section, known in (("campaigns", "campaigns", campaigns), ("publishers", "publishers", publishers)):
                for xi, x in _seq(when.get(key)):
                    if x not in known:
                        problems.append(
                            (
                                ("queues", qi, "priority", ri, "when", key, xi),
                                unknown(section[:-1], section, x, known, "remove it from the rule"),
                            )
                        )
    for fi, flow in _items(data, "ivr_flows"):
        problems.extend((("ivr_flows", fi, *sub), msg) for sub, msg in ivr_flow_problems(flow))
    ids = {"campaigns": campaigns, "buyers": buyers, "agents": _ids(data, "agents"), "queues": queues}
    problems.extend(simulation_reference_problems(data, ids))
    for ei, e in _items(data, "crm_endpoints"):
        for key, kind, known in (("buyers", "buyer", buyers), ("campaigns", "campaign", campaigns), ("queues", "queue", queues)):
            for xi, x in _seq(e.get(key)):
                if x not in known:
                    problems.append(
                        (("crm_endpoints", ei, key, xi), unknown(kind, key, x, known, f"remove it from the endpoint's {key}"))
                    )
    return problems


def _price(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None  # a malformed price is the field check's to report


def _dead_tier_problems(data: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """A buyer tier that can never place a call of its campaign: every buyer in it is blocked by the
    campaign's publisher or bids a static price below the publisher's min_price (the eligibility
    rules "blocked_by_publisher" and "floor" exclude it on every call). An RTB buyer may bid above
    the floor, so a tier with one is never refused here."""
    problems: list[tuple[FieldPath, str]] = []
    publishers = {p.get("id"): p for _, p in _items(data, "publishers")}
    buyers = {b.get("id"): b for _, b in _items(data, "buyers")}
    for ci, c in _items(data, "campaigns"):
        pub = publishers.get(c.get("publisher"))
        routing = c.get("routing")
        if pub is None or not isinstance(routing, Mapping):
            continue
        floor = _price(pub.get("min_price", 0)) or Decimal(0)
        blocked = set(pub.get("blocked_buyers") or [])
        for ti, t in _items(routing, "tiers"):
            names = [b for _, b in _seq(t.get("buyers"))]
            if not names or any(b not in buyers for b in names):
                continue  # no buyer tier, or an unknown buyer (reported above)
            why: list[str] = []
            for b in names:
                bid = buyers[b].get("bid")
                price = _price(bid.get("price")) if isinstance(bid, Mapping) and bid.get("type") == "static" else None
                if b in blocked:
                    why.append(f"{b} is in its blocked_buyers")
                elif price is not None and price < floor:
                    why.append(f"{b} bids {price:.2f}, below its min_price {floor:.2f}")
                else:
                    break  # this buyer can take a call: the tier is alive
            else:
                problems.append(
                    (
                        ("campaigns", ci, "routing", "tiers", ti, "buyers"),
                        f"this tier can never place a call: for publisher {pub.get('id')!r}, "
                        + "; ".join(why)
                        + " (raise the price or min_price, unblock a buyer, add a buyer that can take the call, or remove the tier)",
                    )
                )
    return problems


# Callback settings that only matter once callbacks are offered (docs/ACD.md, Callbacks).
_CALLBACK_KEYS = ("callback_retries", "callback_retry_after_s", "callback_max_wait_s")


def _callback_problems(data: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """A callback setting written for a queue that never offers callbacks would be read by nothing."""
    problems: list[tuple[FieldPath, str]] = []
    for qi, q in _items(data, "queues"):
        if q.get("callback_offer_after_s") is not None:
            continue
        for key in _CALLBACK_KEYS:
            if key in q:
                problems.append(
                    (
                        ("queues", qi, key),
                        f"{key} is set but callback_offer_after_s is not, so no callback is ever offered and nothing "
                        f"reads it (set callback_offer_after_s, or remove {key})",
                    )
                )
    return problems


def _flow_languages(flow: Mapping[str, Any]) -> set[str]:
    """The languages a call of the IVR flow can have: the flow's, and every set_language option's."""
    langs = {str(flow.get("language") or "en")}
    nodes = flow.get("nodes")
    for node in nodes.values() if isinstance(nodes, Mapping) else ():
        if not isinstance(node, Mapping) or node.get("type") != "set_language":
            continue
        options = node.get("options")
        for option in options.values() if isinstance(options, Mapping) else ():
            lang = option.get("language") if isinstance(option, Mapping) else option
            if isinstance(lang, str):
                langs.add(lang)
    return langs


def _announcement_language_problems(data: Mapping[str, Any]) -> list[tuple[FieldPath, str]]:
    """`queues[].announcements.<language>` for a language no call of the queue can have would never be said.

    A call's language is its campaign's IVR flow's (its `language`, or one a set_language node chose).
    A campaign without a flow takes its answers, the language among them, from the edge (SubmitAnswers):
    a queue it routes to may get any language and is not checked, nor is a queue no campaign routes to.
    `announcements.en` also serves `en-US` callers.
    """
    flows = {str(f.get("id")): f for _, f in _items(data, "ivr_flows")}
    langs_of_queue: dict[str, set[str]] = {}
    open_queues: set[str] = set()
    for _, c in _items(data, "campaigns"):
        routing = c.get("routing")
        if not isinstance(routing, Mapping):
            continue
        flow = flows.get(str(c.get("ivr"))) if c.get("ivr") else None
        for _, t in _items(routing, "tiers"):
            if t.get("strategy") == "queue" and isinstance(t.get("queue"), str):
                if flow is None:
                    # An edge that runs its own IVR sets the language in SubmitAnswers: any language can come.
                    open_queues.add(t["queue"])
                else:
                    langs_of_queue.setdefault(t["queue"], set()).update(_flow_languages(flow))
    problems: list[tuple[FieldPath, str]] = []
    for qi, q in _items(data, "queues"):
        queue_langs = langs_of_queue.get(str(q.get("id")))
        announcements = q.get("announcements")
        if queue_langs is None or str(q.get("id")) in open_queues or not isinstance(announcements, Mapping):
            continue
        reachable = queue_langs | {lang.split("-")[0] for lang in queue_langs}
        for lang in announcements:
            if str(lang) not in reachable:
                problems.append(
                    (
                        ("queues", qi, "announcements", lang),
                        f"no call of this queue can be in {str(lang)!r}: its campaigns' calls are in "
                        f"{', '.join(sorted(queue_langs))} (announce in one of those, or add {lang} to a campaign's IVR flow)",
                    )
                )
    return problems
