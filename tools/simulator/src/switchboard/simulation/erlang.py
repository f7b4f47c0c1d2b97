"""Erlang C and Erlang A, to check the simulator's queue model against: core.waits' (one formula for the queue
service's outlook and the simulator's fidelity check)."""

from __future__ import annotations

from switchboard.core.waits import ErlangA, ErlangC, erlang_a, erlang_c

__all__ = ["ErlangA", "ErlangC", "erlang_a", "erlang_c"]
