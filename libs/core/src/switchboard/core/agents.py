"""Agent states and the agents' desk commands (pure: no I/O, time is passed in). docs/ACD.md "Agents".

Every agent of the ACD has a `Presence` (on `core.acd.AgentState.presence`): logged in or not,
ready or not (with a reason), its wrap-up, its recent offers (learned performance). Its state
(`state_of`, the proto's AgentState) follows from the presence and its calls:

    ON_CALL     it has a call (also while logged out or in wrap-up: the call stays its own)
    WRAP_UP     after a call of a queue with wrap_up_s > 0, until wrap_up_until or EndWrapUp
    LOGGED_OUT  not logged in (`login: desk` before its Login, after Logout or a heartbeat logout)
    READY       logged in and ready: takes calls (up to max_concurrent)
    NOT_READY   logged in, not ready (reason: break, lunch, login, ...)

    LOGGED_OUT ──Login──► READY / NOT_READY ◄──SetReady──► (each other)
    READY ──a call──► ON_CALL ──its end──► WRAP_UP ──wrap_up_s / EndWrapUp──► READY / NOT_READY
    any ──Logout / heartbeat──► LOGGED_OUT (a call it has stays ON_CALL until it ends, then LOGGED_OUT)

An agent takes a new call only when it is logged in, ready, not in wrap-up and under
max_concurrent (`takes_calls` and `AgentState.has_capacity`). `login: always` agents start logged
in and ready (the static roster) and cannot log in or out through the desk: they are the
configuration's; they can go not ready and end their wrap-ups like any agent.

Every state change (state, its reason or its call) is noted by `note` into `Acd.agent_changes`
(`AgentChange`, the owner publishes them as agent.events); the commands raise `DeskError` before
changing anything when the agent is unknown (`not_found`) or in the wrong state
(`failed_precondition`).

Learned performance (`performance: learned`): the share of the agent's last LEARNED_WINDOW offers
that it answered (`record_offer`); UNLEARNED_PERFORMANCE before its first offer.

Heartbeat: a desk agent logged in with no open Work stream (`streams`) whose last sign of life
(`last_seen`: Login, Heartbeat, a Work stream closing) is `heartbeat_s` old is logged out with
reason "heartbeat" (`heartbeat_logouts`). last_seen and streams are not persisted: after a restart
the owner starts every timer from the restart (`start_timers`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from switchboard.v1 import events_pb2 as pb

if TYPE_CHECKING:  # acd imports this module
    from switchboard.core.acd import Acd, AgentState, Assignment

LEARNED_WINDOW = 50  # recent offers that learned performance is the answered share of
UNLEARNED_PERFORMANCE = 0.5  # a learned performance before the agent's first offer (the configured default)

LOGOUT_AGENT = "agent"  # Logout
LOGOUT_HEARTBEAT = "heartbeat"  # no Work stream and no Heartbeat for agent_heartbeat_s
NOT_READY_LOGIN = "login"  # logged in not ready without saying why


@dataclass
class WrapUp:
    call_id: str
    until: float


@dataclass
class Presence:
    login: Literal["always", "desk"]
    logged_in: bool
    ready: bool = True
    reason: str = ""  # not ready: why; logged out: "agent" | "heartbeat" ("" before the first login)
    since: float | None = None  # in the current state since (None: since the owner started)
    wrap_up: WrapUp | None = None
    call_id: str = ""  # the newest call given to the agent (its ON_CALL call)
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=LEARNED_WINDOW))  # answered? newest last
    # Not persisted (module doc):
    last_seen: float = 0.0
    streams: int = 0
    shown: tuple[int, str, str] = (pb.AGENT_STATE_UNSPECIFIED, "", "")  # (state, reason, call id) last noted

    @property
    def takes_calls(self) -> bool:
        return self.logged_in and self.ready and self.wrap_up is None

    @classmethod
    def initial(cls, login: Literal["always", "desk"]) -> Presence:
        return cls(login=login, logged_in=login == "always")


@dataclass(frozen=True)
class AgentChange:
    """One state change of an agent (an agent.events record)."""

    agent_id: str
    state: int  # pb.AgentState
    previous_state: int
    reason: str
    call_id: str
    disposition: str
    note: str
    queue_ids: tuple[str, ...]
    at: float


class DeskError(Exception):
    """A desk command refused: `code` is not_found (unknown agent) or failed_precondition (wrong state)."""

    def __init__(self, code: Literal["not_found", "failed_precondition"], message: str) -> None:
        super().__init__(message)
        self.code = code


# -- state ---------------------------------------------------------------------------------------
def state_of(s: AgentState) -> int:
    p = s.presence
    if s.active:
        return pb.AGENT_STATE_ON_CALL
    if p.wrap_up is not None:
        return pb.AGENT_STATE_WRAP_UP
    if not p.logged_in:
        return pb.AGENT_STATE_LOGGED_OUT
    return pb.AGENT_STATE_READY if p.ready else pb.AGENT_STATE_NOT_READY


def current(s: AgentState) -> tuple[int, str, str]:
    """(state, reason, call id) of the agent now."""
    state, p = state_of(s), s.presence
    if state == pb.AGENT_STATE_ON_CALL:
        call = p.call_id if p.call_id in s.active else min(s.active)
        return state, "", call
    if state == pb.AGENT_STATE_WRAP_UP:
        assert p.wrap_up is not None
        return state, "", p.wrap_up.call_id
    if state in (pb.AGENT_STATE_NOT_READY, pb.AGENT_STATE_LOGGED_OUT):
        return state, p.reason, ""
    return state, "", ""


def reset_shown(s: AgentState) -> None:
    """Take the agent's current state as already published (a restored state: no event for it)."""
    s.presence.shown = current(s)


def note(acd: Acd, s: AgentState, now: float, *, disposition: str = "", note_text: str = "", call_id: str = "") -> None:
    """Record a state change of `s` (if its state, reason or call changed) in acd.agent_changes.

    `call_id` names the call of a change that leaves WRAP_UP (the call the disposition is about).
    """
    shown = current(s)
    previous = s.presence.shown
    if shown == previous:
        return
    s.presence.shown = shown
    s.presence.since = now
    acd.agent_changes.append(
        AgentChange(
            agent_id=s.agent.id,
            state=shown[0],
            previous_state=previous[0],
            reason=shown[1],
            call_id=shown[2] or call_id,
            disposition=disposition,
            note=note_text,
            queue_ids=tuple(s.agent.queues),
            at=now,
        )
    )


def performance(s: AgentState) -> float:
    """The agent's performance: configured, or learned (module doc)."""
    configured = s.agent.performance
    if not isinstance(configured, str):
        return float(configured)
    recent = s.presence.recent
    return sum(recent) / len(recent) if recent else UNLEARNED_PERFORMANCE


def record_offer(acd: Acd, agent_id: str, answered: bool) -> None:
    """An offer to the agent ended: answered or not (no answer, declined, busy, failed)."""
    s = acd.agents.get(agent_id)
    if s is not None:
        s.presence.recent.append(answered)


def unavailable(s: AgentState) -> str | None:
    """Why the agent takes no new call now apart from its load (the decision trace's excluded_by), None when it does."""
    p = s.presence
    if not p.logged_in:
        return "agent:logged_out"
    if p.wrap_up is not None:
        return "agent:wrap_up"
    if not p.ready:
        return "agent:not_ready"
    return None


def state_name(s: AgentState) -> str:
    """The agent's state in words, for the decision trace of a call it did not get."""
    p = s.presence
    if not p.logged_in:
        return f"logged out ({p.reason})" if p.reason else "logged out"
    if p.wrap_up is not None:
        return f"wrap-up of call {p.wrap_up.call_id}"
    return f"not ready ({p.reason})" if not p.ready else "ready"


def begin_wrap_up(s: AgentState, call_id: str, wrap_up_s: int, now: float) -> None:
    """A call of the agent ended: wrap-up for the queue's wrap_up_s (0: none; a logged-out agent: none)."""
    if wrap_up_s > 0 and s.presence.logged_in:
        s.presence.wrap_up = WrapUp(call_id, now + wrap_up_s)


# -- commands (AgentDesk) ------------------------------------------------------------------------
def agent(acd: Acd, agent_id: str) -> AgentState:
    s = acd.agents.get(agent_id)
    if s is None:
        raise DeskError("not_found", f"agent {agent_id!r} is not configured (agents[].id in the routing configuration)")
    return s


def login(acd: Acd, agent_id: str, now: float, *, ready: bool) -> list[Assignment]:
    """Log a `login: desk` agent in, ready or not ready (reason "login"); logged in already: set ready as asked."""
    s = agent(acd, agent_id)
    if s.agent.login == "always":
        raise DeskError(
            "failed_precondition",
            f"agent {agent_id!r} is `login: always`: always logged in by the configuration; set `login: desk` to log it in "
            "and out through AgentDesk",
        )
    p = s.presence
    p.last_seen = now
    p.logged_in = True
    p.ready = ready
    p.reason = "" if ready else NOT_READY_LOGIN
    note(acd, s, now)
    return acd.dispatch(now) if ready else []


def logout(acd: Acd, agent_id: str, now: float, *, reason: str = LOGOUT_AGENT) -> None:
    """Log a desk agent out: no new calls; a call it has stays its own until it ends; its wrap-up ends (no disposition).
    Logged out already: nothing changes."""
    s = agent(acd, agent_id)
    if s.agent.login == "always":
        raise DeskError(
            "failed_precondition",
            f"agent {agent_id!r} is `login: always`: it cannot log out (set `login: desk`, or SetReady ready=false for a break)",
        )
    p = s.presence
    if not p.logged_in:
        return
    wrapped = p.wrap_up.call_id if p.wrap_up is not None else ""
    p.logged_in, p.wrap_up, p.reason = False, None, reason
    note(acd, s, now, call_id=wrapped)


def set_ready(acd: Acd, agent_id: str, now: float, *, ready: bool, reason: str = "") -> list[Assignment]:
    """Ready, or not ready with a reason. On a call or in wrap-up: takes effect after them."""
    s = agent(acd, agent_id)
    p = s.presence
    if not p.logged_in:
        raise DeskError("failed_precondition", f"agent {agent_id!r} is logged out: Login first")
    p.ready = ready
    p.reason = "" if ready else (reason or "not_ready")
    note(acd, s, now)
    return acd.dispatch(now) if ready else []


def end_wrap_up(
    acd: Acd, agent_id: str, now: float, *, call_id: str = "", disposition: str = "", note_text: str = ""
) -> list[Assignment]:
    """End the agent's wrap-up now with the call's disposition; the agent takes the next waiting call if ready."""
    s = agent(acd, agent_id)
    w = s.presence.wrap_up
    if w is None:
        raise DeskError("failed_precondition", f"agent {agent_id!r} is not in wrap-up (it ended or timed out: wrap_up_s)")
    if call_id and call_id != w.call_id:
        raise DeskError("failed_precondition", f"agent {agent_id!r} is wrapping up call {w.call_id}, not {call_id}")
    s.presence.wrap_up = None
    note(acd, s, now, disposition=disposition, note_text=note_text, call_id=w.call_id)
    return acd.dispatch(now)


def heartbeat(acd: Acd, agent_id: str, now: float) -> None:
    s = agent(acd, agent_id)
    if s.agent.login == "desk" and not s.presence.logged_in:
        raise DeskError(
            "failed_precondition", f"agent {agent_id!r} is logged out ({s.presence.reason or 'never logged in'}): Login again"
        )
    s.presence.last_seen = now


def stream_opened(acd: Acd, agent_id: str, now: float) -> AgentState:
    s = agent(acd, agent_id)
    if s.agent.login == "desk" and not s.presence.logged_in:
        raise DeskError("failed_precondition", f"agent {agent_id!r} is logged out: Login before opening Work")
    s.presence.streams += 1
    s.presence.last_seen = now
    return s


def stream_closed(acd: Acd, agent_id: str, now: float) -> None:
    s = acd.agents.get(agent_id)
    if s is not None:
        s.presence.streams = max(0, s.presence.streams - 1)
        s.presence.last_seen = now  # the heartbeat timer runs from the disconnect


# -- timers (the owner's sweep) ------------------------------------------------------------------
def end_due_wrap_ups(acd: Acd, now: float) -> list[Assignment]:
    """End the wrap-ups whose wrap_up_s passed (no disposition); the freed agents take waiting calls."""
    due = [s for s in acd.agents.values() if s.presence.wrap_up is not None and s.presence.wrap_up.until <= now]
    for s in due:
        w = s.presence.wrap_up
        assert w is not None
        s.presence.wrap_up = None
        note(acd, s, now, call_id=w.call_id)
    return acd.dispatch(now) if due else []


def heartbeat_logouts(acd: Acd, now: float, heartbeat_s: float) -> list[str]:
    """Log out (reason "heartbeat") the desk agents with no Work stream and no sign of life for heartbeat_s."""
    out = []
    for s in acd.agents.values():
        p = s.presence
        if s.agent.login == "desk" and p.logged_in and p.streams == 0 and now - p.last_seen >= heartbeat_s:
            logout(acd, s.agent.id, now, reason=LOGOUT_HEARTBEAT)
            out.append(s.agent.id)
    return out


def start_timers(acd: Acd, now: float) -> None:
    """Every heartbeat timer starts now (a restarted owner: nobody is connected yet)."""
    for s in acd.agents.values():
        s.presence.last_seen = now


# -- persistence (inside Acd.to_dict / from_dict, additive within STATE_VERSION 1) ---------------
def presence_dict(p: Presence) -> dict[str, Any]:
    out: dict[str, Any] = {"logged_in": p.logged_in, "ready": p.ready}
    if p.reason:
        out["reason"] = p.reason
    if p.since is not None:
        out["since"] = p.since
    if p.wrap_up is not None:
        out["wrap_up"] = {"call_id": p.wrap_up.call_id, "until": p.wrap_up.until}
    if p.call_id:
        out["call_id"] = p.call_id
    if p.recent:
        out["recent"] = "".join("1" if a else "0" for a in p.recent)
    return out


def presence_from(s: AgentState, data: Mapping[str, Any] | None, time_shift: float) -> None:
    """Restore the agent's presence from `data` (None: a state written before presences were kept: the initial one)."""
    p = Presence.initial(s.agent.login)
    if data is not None:
        # A `login: always` agent is logged in whatever the state says (its configuration may have changed).
        p.logged_in = True if s.agent.login == "always" else bool(data.get("logged_in", False))
        p.ready = bool(data.get("ready", True))
        p.reason = str(data.get("reason", ""))
        since = data.get("since")
        p.since = None if since is None else since + time_shift
        w = data.get("wrap_up")
        if w is not None:
            p.wrap_up = WrapUp(str(w["call_id"]), w["until"] + time_shift)
        p.call_id = str(data.get("call_id", ""))
        p.recent.extend(c == "1" for c in str(data.get("recent", "")))
    s.presence = p


def states_count(states: Iterable[AgentState]) -> dict[int, int]:
    """Agents by state (every state present, 0 included): the gauge."""
    shown: tuple[int, ...] = (
        pb.AGENT_STATE_LOGGED_OUT,
        pb.AGENT_STATE_READY,
        pb.AGENT_STATE_NOT_READY,
        pb.AGENT_STATE_ON_CALL,
        pb.AGENT_STATE_WRAP_UP,
    )
    out: dict[int, int] = dict.fromkeys(shown, 0)
    for s in states:
        out[state_of(s)] += 1
    return out
