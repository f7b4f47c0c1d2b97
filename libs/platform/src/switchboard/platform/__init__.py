"""Shared platform code: settings, logging, Kafka I/O, topic table, codecs, embedded broker."""
