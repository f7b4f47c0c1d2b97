"""The pure routing core: configuration models, eligibility, strategies, decisions. No I/O besides reading config files."""
