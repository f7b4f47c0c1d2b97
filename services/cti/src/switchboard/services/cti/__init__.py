"""cti: call context for CRMs — screen pop when a call is routed, wrap-up when it ends (topic cti.events)."""
