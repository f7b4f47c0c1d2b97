"""The bidder: answers ping.requested with one bid.received per pinged buyer (static at once, RTB over HTTP/gRPC)."""
