"""The pure routing core: configuration models, eligibility, strategies, decisions. No I/O (config files are read by switchboard.platform.configfile)."""
