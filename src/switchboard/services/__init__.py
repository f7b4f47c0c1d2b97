"""One package per service; each runs as `python -m switchboard.services.<name>`."""
