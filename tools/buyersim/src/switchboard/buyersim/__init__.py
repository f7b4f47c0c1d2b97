"""Buyer simulator: one HTTP + gRPC server process playing many RTB buyers from a YAML description.

`python -m switchboard.buyersim --config buyers.yaml` (see config.py for the format).
"""
