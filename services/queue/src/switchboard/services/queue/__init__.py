"""queue: the in-house ACD — hands queued calls to free agents (core.acd does the matching)."""
