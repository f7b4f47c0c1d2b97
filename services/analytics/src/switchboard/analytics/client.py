"""Building a clickhouse-connect client from one DSN: embedded chDB or a ClickHouse server.

DSN forms:
- ``chdb:///abs/path/to/dir`` — embedded chDB with its data in that directory
  (``chdb:relative/dir`` works too, resolved against the current directory);
  ``?database=name`` picks the database (default ``switchboard``).
- ``chdb://memory`` — embedded, in memory (gone when the process exits).
- ``http://user:pass@host:8123/dbname`` / ``https://...:8443/dbname`` — a server;
  the path is the database (default ``switchboard``).

chDB facts (measured with chdb 4.4 / clickhouse-connect 1.12):
- One process owns a data path: a second process cannot open it while the first
  has it open ("Error initializing EmbeddedServer").
- One process hosts one engine at a time: opening a different path while any
  client is open raises ProgrammingError; after every client is closed a process
  may open another path (or the same one again).
So close the client to release the path, and read a path another process owns
only after that process has exited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from switchboard.analytics.tables import DEFAULT_DATABASE, quote_ident


def default_dsn(base: Path | str | None = None) -> str:
    """The local default: embedded chDB in ./var/chdb under the current directory (absolute)."""
    return f"chdb://{(Path(base) if base else Path.cwd()).resolve() / 'var' / 'chdb'}"


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """Return (dsn without a database, the database it names or None).

    clickhouse-connect requires a DSN's database to exist already; we create it
    first, so the database is taken out here and applied after connecting.
    """
    p = urlparse(dsn)
    if p.scheme == "chdb":
        query = parse_qsl(p.query)
        db = next((v for k, v in query if k == "database"), None)
        rest = urlencode([(k, v) for k, v in query if k != "database"])
        if p.netloc:  # chdb://memory/dbname: the path is the database
            db = db or (p.path.strip("/").split("/")[0] or None)
            path = ""
        else:  # chdb:///abs/path or chdb:rel/path: the path is the data directory
            path = p.path
        # urlunparse would drop the "//" of an empty netloc for an unknown scheme: build it by hand.
        base = f"chdb://{p.netloc}{path}" if p.netloc or path.startswith("/") else f"chdb:{path}"
        return base + (f"?{rest}" if rest else ""), db
    if p.scheme in ("http", "https", "clickhouse", "clickhousedb"):
        db = p.path.strip("/").split("/")[0] or None
        return urlunparse(p._replace(path="")), db
    raise ValueError(f"unsupported analytics DSN {redact(dsn)!r}: use chdb:///path, chdb://memory or http(s)://host:port/db")


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and error messages."""
    p = urlparse(dsn)
    if p.password:
        netloc = f"{p.username}:***@{p.hostname}" + (f":{p.port}" if p.port else "")
        return urlunparse(p._replace(netloc=netloc))
    return dsn


def database_of(dsn: str, database: str | None = None) -> str:
    return database or split_dsn(dsn)[1] or DEFAULT_DATABASE


def open_client(dsn: str, database: str | None = None, *, create_database: bool = True) -> Any:
    """A clickhouse-connect client for any DSN, its default database set (created if asked).

    Blocking (and for chDB it takes the data path): call it from a thread in async
    code, and `close()` the client to release the path.
    """
    import clickhouse_connect  # heavy import: only when a client is built

    base, dsn_db = split_dsn(dsn)
    db = database or dsn_db or DEFAULT_DATABASE
    client = clickhouse_connect.get_client(dsn=base)
    try:
        if create_database:
            client.command(f"CREATE DATABASE IF NOT EXISTS {quote_ident(db)}")
        client.database = db
    except BaseException:
        client.close()
        raise
    return client
