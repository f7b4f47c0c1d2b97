"""The bidder: answers ping.requested with one bid.received per pinged buyer (static now, RTB in issue #4)."""
