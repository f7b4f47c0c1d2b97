"""ivr: the telephony edge's entry point (gRPC CallControl) — qualifies calls and reports routing back."""
