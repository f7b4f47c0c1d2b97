"""The router: routes each qualified call through its campaign's ping tree (Faust, state in tables)."""
