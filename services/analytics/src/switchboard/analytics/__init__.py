"""Analytics in ClickHouse: table schema and event → row mapping (tables), client
construction from a DSN (client), and report queries (reports).

Shared by the analytics sink service (switchboard.services.analytics) and the
CLI. Importing this package connects nowhere and does not load chDB.
"""
