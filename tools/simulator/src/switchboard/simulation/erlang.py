"""Erlang C, to check the simulator's queue model against: core.waits' (one formula for the queue
service's outlook and the simulator's fidelity check)."""

from __future__ import annotations

from switchboard.core.waits import ErlangC, erlang_c

__all__ = ["ErlangC", "erlang_c"]
