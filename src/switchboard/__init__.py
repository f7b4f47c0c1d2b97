"""Switchboard: automatic call distributor and ping-tree marketplace for pay-per-call."""

__version__ = "0.1.0"
