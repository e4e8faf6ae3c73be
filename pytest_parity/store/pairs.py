"""Where the proxy keeps its pairs: sqlite (one proxy, the default) or PostgreSQL (several).

Schema (table ``shadow_pairs``, the same columns in both back ends; times are Unix seconds, UTC):

======================  =====================================================================
column                  meaning
======================  =====================================================================
id                      increasing row id (per store; with PostgreSQL shared by all proxies)
ts                      when the request reached the proxy
instance                the proxy that stored it (``shadow.instance``, default host:port:pid)
segment                 the request's segment (header, model, path or hook; bounded set)
path                    the request path, e.g. ``/v1/chat/completions``
protocol                ``chat``, ``completions`` or ``anthropic``
model                   the model the client asked for
stream                  1 when the client asked for a streamed (SSE) answer
request                 the request body as JSON text, redacted, secrets removed
request_hash            sha256 of the redacted request (de-duplication)
serving_stack           the serving endpoint's name (``baseline`` ...), then per side the same:
{side}_status           HTTP status (NULL when no answer came: see {side}_error)
{side}_error            error category (``connect``, ``timeout``, ``http_5xx``, ...) or NULL
{side}_text             the answer's text, redacted
{side}_tool_calls       JSON list of ``{name, arguments}`` or NULL
{side}_finish           finish reason as the server said it
{side}_latency          seconds from the request to the answer's last byte
{side}_ttft             seconds to the first streamed chunk (NULL when not streamed)
{side}_prompt_tokens    usage as the server reported it (NULL when it did not)
{side}_completion_tokens
shadow_stack            the shadow endpoint's name
======================  =====================================================================

with ``{side}`` = ``serving`` and ``shadow``. Table ``shadow_meta`` holds ``schema_version``.
Table ``shadow_monitor`` holds the drift monitor's state (``parity --parity-monitor``): per task a
checkpoint row (``segment`` = ``''``: the stable key ``(ts, id)`` of the last pair counted) and one
row per segment with the sequential monitor's state as JSON; a run saves them in one transaction,
only if the checkpoint is still the one it started from (:class:`MonitorConflict` otherwise).

Reading (the drift gate's API): ``open_store(url).pairs(since=, until=, segment=)`` yields
:class:`StoredPair` objects in time order, streaming (constant memory); ``segments()`` counts
pairs per segment; ``count()``. Writing happens in one background thread
(:class:`pytest_parity.shadow.writer.StoreWriter`) in batches of ``batch`` rows or every
``flush_seconds``, in one transaction each: a ``kill -9`` loses at most the rows not yet flushed
and leaves the file intact (sqlite WAL).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

SCHEMA_VERSION = 1
log = logging.getLogger("pytest_parity.shadow")

SIDE_COLUMNS = (
    ("status", "INTEGER"),
    ("error", "TEXT"),
    ("text", "TEXT"),
    ("tool_calls", "TEXT"),
    ("finish", "TEXT"),
    ("latency", "REAL"),
    ("ttft", "REAL"),
    ("prompt_tokens", "INTEGER"),
    ("completion_tokens", "INTEGER"),
)
BASE_COLUMNS = (
    ("ts", "REAL"),
    ("instance", "TEXT"),
    ("segment", "TEXT"),
    ("path", "TEXT"),
    ("protocol", "TEXT"),
    ("model", "TEXT"),
    ("stream", "INTEGER"),
    ("request", "TEXT"),
    ("request_hash", "TEXT"),
    ("serving_stack", "TEXT"),
    ("shadow_stack", "TEXT"),
)
COLUMNS: tuple[tuple[str, str], ...] = BASE_COLUMNS + tuple(
    (f"{side}_{name}", typ) for side in ("serving", "shadow") for name, typ in SIDE_COLUMNS
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)


@dataclass(frozen=True)
class StoredPair:
    """One stored pair (see the module docstring for each field)."""

    id: int
    ts: float
    instance: str
    segment: str
    path: str
    protocol: str
    model: str | None
    stream: bool
    request: dict[str, Any]
    request_hash: str
    serving_stack: str
    shadow_stack: str
    serving_status: int | None
    serving_error: str | None
    serving_text: str | None
    serving_tool_calls: list[dict[str, Any]] | None
    serving_finish: str | None
    serving_latency: float | None
    serving_ttft: float | None
    serving_prompt_tokens: int | None
    serving_completion_tokens: int | None
    shadow_status: int | None
    shadow_error: str | None
    shadow_text: str | None
    shadow_tool_calls: list[dict[str, Any]] | None
    shadow_finish: str | None
    shadow_latency: float | None
    shadow_ttft: float | None
    shadow_prompt_tokens: int | None
    shadow_completion_tokens: int | None

    @property
    def both_answered(self) -> bool:
        """Both sides gave a readable 2xx answer (the pairs a quality comparison can use)."""
        return self.serving_error is None and self.shadow_error is None


_PAIR_FIELDS = tuple(f.name for f in fields(StoredPair))
assert ("id", *COLUMN_NAMES) == _PAIR_FIELDS, "StoredPair must list the columns in order"


class MonitorConflict(RuntimeError):
    """Another monitor run moved the checkpoint while this one judged; ``str()`` is one line."""


@dataclass(frozen=True)
class MonitorState:
    """A task's stored monitor state: the checkpoint ``(ts, id)`` of the last pair counted (None:
    nothing counted yet) and each segment's state (the sequential monitor's, JSON)."""

    task: str
    checkpoint: tuple[float, int] | None
    states: dict[str, dict[str, Any]]


def _row_to_pair(row: tuple[Any, ...]) -> StoredPair:
    d = dict(zip(_PAIR_FIELDS, row, strict=True))
    d["stream"] = bool(d["stream"])
    d["request"] = json.loads(d["request"]) if d["request"] else {}
    for k in ("serving_tool_calls", "shadow_tool_calls"):
        d[k] = json.loads(d[k]) if d[k] else None
    return StoredPair(**d)


def record_values(rec: Mapping[str, Any]) -> tuple[Any, ...]:
    """A record dict (keys from COLUMN_NAMES) as a row tuple; JSON columns serialized."""
    out = []
    for c in COLUMN_NAMES:
        x = rec.get(c)
        if c in ("request", "serving_tool_calls", "shadow_tool_calls") and x is not None:
            x = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False, sort_keys=True)
        elif c == "stream":
            x = 1 if x else 0
        out.append(x)
    return tuple(out)


class Store(ABC):
    """The common API of both back ends (sqlite, PostgreSQL)."""

    placeholder = "?"

    @abstractmethod
    def write(self, rows: list[tuple[Any, ...]]) -> None:
        """Store a batch of pair rows in one transaction."""

    @abstractmethod
    def enforce_retention(self, days: float | None, rows: int | None) -> int:
        """Delete pairs older than ``days`` or beyond the newest ``rows``; returns how many."""

    @abstractmethod
    def _query(self, sql: str, args: tuple[Any, ...], *, stream: bool = False) -> Iterator[Any]:
        """Rows of one SELECT (streamed with a server-side cursor where the back end has one)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the connection."""

    def _where(
        self,
        since: float | None,
        until: float | None,
        segment: str | None,
        after: tuple[float, int] | None = None,
        client_errors: bool = True,
    ) -> tuple[str, tuple[Any, ...]]:
        p = self.placeholder
        clauses: list[str] = []
        args: list[Any] = []
        if after is not None:
            # The stable key (ts, id): strictly after the pair last counted, ties broken by id.
            clauses.append(f"(ts > {p} OR (ts = {p} AND id > {p}))")
            args.extend((after[0], after[0], after[1]))
        if not client_errors:
            # The client hung up or sent a request the serving stack refused: not a stack's doing.
            clauses.append(
                "(serving_error IS NULL OR serving_error NOT IN ('disconnect', 'http_4xx'))"
            )
        if since is not None:
            clauses.append(f"ts >= {p}")
            args.append(since)
        if until is not None:
            clauses.append(f"ts < {p}")
            args.append(until)
        if segment is not None:
            clauses.append(f"segment = {p}")
            args.append(segment)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)

    def pairs(
        self,
        since: float | None = None,
        until: float | None = None,
        segment: str | None = None,
        *,
        limit: int | None = None,
        after: tuple[float, int] | None = None,
        client_errors: bool = True,
    ) -> Iterator[StoredPair]:
        """Pairs with ``since <= ts < until`` (of one segment if given), oldest first, streamed;
        ``after=(ts, id)``: only pairs after that one in ``(ts, id)`` order; ``client_errors=False``
        leaves out pairs whose serving side the client broke (hung up, HTTP 4xx)."""
        where, args = self._where(since, until, segment, after, client_errors)
        sql = f"SELECT id, {', '.join(COLUMN_NAMES)} FROM shadow_pairs{where} ORDER BY ts, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self._query(sql, args, stream=True):
            yield _row_to_pair(tuple(row))

    def segments(
        self, since: float | None = None, until: float | None = None, *, client_errors: bool = True
    ) -> dict[str, int]:
        """Pairs per segment in the window."""
        where, args = self._where(since, until, None, client_errors=client_errors)
        sql = f"SELECT segment, COUNT(*) FROM shadow_pairs{where} GROUP BY segment ORDER BY segment"
        return {str(s): int(n) for s, n in self._query(sql, args)}

    def count(
        self,
        since: float | None = None,
        until: float | None = None,
        segment: str | None = None,
        *,
        after: tuple[float, int] | None = None,
        client_errors: bool = True,
    ) -> int:
        where, args = self._where(since, until, segment, after, client_errors)
        rows = list(self._query(f"SELECT COUNT(*) FROM shadow_pairs{where}", args))
        return int(rows[0][0])

    def last_key(self, until: float | None = None) -> tuple[float, int] | None:
        """The stable key ``(ts, id)`` of the newest pair before ``until`` (None: no pair)."""
        where, args = self._where(None, until, None)
        rows = list(
            self._query(
                f"SELECT ts, id FROM shadow_pairs{where} ORDER BY ts DESC, id DESC LIMIT 1", args
            )
        )
        return None if not rows else (float(rows[0][0]), int(rows[0][1]))

    # -- the drift monitor's state ------------------------------------------------------------

    def monitor_load(self, task: str) -> MonitorState:
        """The task's checkpoint and per-segment states (empty when it never ran or was reset)."""
        p = self.placeholder
        rows = list(
            self._query(
                f"SELECT segment, state, last_ts, last_id FROM shadow_monitor WHERE task = {p}",
                (task,),
            )
        )
        checkpoint: tuple[float, int] | None = None
        states: dict[str, dict[str, Any]] = {}
        for segment, state, last_ts, last_id in rows:
            if segment == "":
                if last_ts is not None and last_id is not None:
                    checkpoint = (float(last_ts), int(last_id))
            else:
                states[str(segment)] = json.loads(state) if state else {}
        return MonitorState(task, checkpoint, states)

    def monitor_save(
        self,
        task: str,
        expected: tuple[float, int] | None,
        checkpoint: tuple[float, int] | None,
        states: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Write the checkpoint and the segments' states in one transaction, only if the stored
        checkpoint is still ``expected`` (else :class:`MonitorConflict`: another run counted)."""
        p = self.placeholder
        now = time.time()

        def body(execute: Any) -> None:
            cur = execute(
                f"SELECT last_ts, last_id FROM shadow_monitor WHERE task = {p} AND segment = ''",
                (task,),
            )
            row = cur.fetchone()
            found = None if row is None or row[0] is None else (float(row[0]), int(row[1]))
            if found != expected:
                raise MonitorConflict(
                    f"task {task}: the monitor's checkpoint moved from {expected} to {found}"
                    " while this run judged (another monitor run on the same store?); run again"
                )
            rows = [(task, "", None, *(checkpoint or (None, None)), now)]
            rows += [
                (task, seg, json.dumps(dict(st), sort_keys=True), None, None, now)
                for seg, st in states.items()
            ]
            execute(f"DELETE FROM shadow_monitor WHERE task = {p}", (task,))
            for r in rows:
                execute(f"INSERT INTO shadow_monitor VALUES ({p}, {p}, {p}, {p}, {p}, {p})", r)

        self._transaction(body)

    def monitor_reset(self, task: str) -> None:
        """Forget the task's checkpoint and states: the next run starts the sequences over."""
        p = self.placeholder
        self._transaction(
            lambda execute: execute(f"DELETE FROM shadow_monitor WHERE task = {p}", (task,))
        )

    @abstractmethod
    def _transaction(self, body: Any) -> None:
        """Run ``body(execute)`` in one write transaction (``execute(sql, args)`` -> cursor)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ddl(id_col: str, real: str) -> list[str]:
    cols = ", ".join(f"{c} {real if t == 'REAL' else t}" for c, t in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS shadow_pairs (id {id_col}, {cols})",
        "CREATE INDEX IF NOT EXISTS shadow_pairs_ts ON shadow_pairs (ts)",
        "CREATE INDEX IF NOT EXISTS shadow_pairs_segment_ts ON shadow_pairs (segment, ts)",
        "CREATE TABLE IF NOT EXISTS shadow_meta (key TEXT PRIMARY KEY, value TEXT)",
        f"CREATE TABLE IF NOT EXISTS shadow_monitor (task TEXT NOT NULL, segment TEXT NOT NULL,"
        f" state TEXT, last_ts {real}, last_id BIGINT, updated {real},"
        " PRIMARY KEY (task, segment))",
    ]


class SqliteStore(Store):
    def __init__(self, path: str, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            return
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        with self._tx():
            for stmt in _ddl("INTEGER PRIMARY KEY AUTOINCREMENT", "REAL"):
                self.conn.execute(stmt)
            self.conn.execute(
                "INSERT OR IGNORE INTO shadow_meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in COLUMN_NAMES)
        with self._tx():
            self.conn.executemany(
                f"INSERT INTO shadow_pairs ({', '.join(COLUMN_NAMES)}) VALUES ({marks})", rows
            )

    def _transaction(self, body: Any) -> None:
        with self._tx():
            body(self.conn.execute)

    def enforce_retention(self, days: float | None, rows: int | None) -> int:
        deleted = 0
        with self._tx():
            if days is not None:
                cur = self.conn.execute(
                    "DELETE FROM shadow_pairs WHERE ts < ?", (time.time() - days * 86400,)
                )
                deleted += cur.rowcount
            if rows is not None:
                cur = self.conn.execute(
                    "DELETE FROM shadow_pairs WHERE id IN (SELECT id FROM shadow_pairs "
                    "ORDER BY ts DESC, id DESC LIMIT -1 OFFSET ?)",
                    (rows,),
                )
                deleted += cur.rowcount
        return deleted

    def _query(self, sql: str, args: tuple[Any, ...], *, stream: bool = False) -> Iterator[Any]:
        cur = self.conn.execute(sql, args)
        while True:
            batch = cur.fetchmany(500)
            if not batch:
                return
            yield from batch

    def close(self) -> None:
        self.conn.close()


class PostgresStore(Store):
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "a postgresql:// store needs psycopg 3: pip install 'pytest-parity[shadow]'"
            ) from exc
        self._psycopg = psycopg
        self.url = url
        self.conn = psycopg.connect(url, autocommit=False)
        with self.conn.transaction():
            # Several proxies may start at once: CREATE TABLE IF NOT EXISTS races in PostgreSQL.
            self.conn.execute("SELECT pg_advisory_xact_lock(7318451)")
            for stmt in _ddl("BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION"):
                self.conn.execute(stmt)
            self.conn.execute(
                "INSERT INTO shadow_meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        self.conn.commit()

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if self.conn.closed or self.conn.broken:
            # The server restarted or the network broke: a fresh connection for this batch.
            self.conn = self._psycopg.connect(self.url, autocommit=False)
        marks = ", ".join("%s" for _ in COLUMN_NAMES)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO shadow_pairs ({', '.join(COLUMN_NAMES)}) VALUES ({marks})", rows
            )
        self.conn.commit()

    def _transaction(self, body: Any) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn = self._psycopg.connect(self.url, autocommit=False)
        with self.conn.transaction():
            # One monitor run at a time per task: the checkpoint is read and written under a lock.
            self.conn.execute("SELECT pg_advisory_xact_lock(7318452)")
            body(self.conn.execute)
        self.conn.commit()

    def enforce_retention(self, days: float | None, rows: int | None) -> int:
        deleted = 0
        with self.conn.transaction():
            if days is not None:
                cur = self.conn.execute(
                    "DELETE FROM shadow_pairs WHERE ts < %s", (time.time() - days * 86400,)
                )
                deleted += cur.rowcount
            if rows is not None:
                cur = self.conn.execute(
                    "DELETE FROM shadow_pairs WHERE id IN (SELECT id FROM shadow_pairs "
                    "ORDER BY ts DESC, id DESC OFFSET %s)",
                    (rows,),
                )
                deleted += cur.rowcount
        self.conn.commit()
        return deleted

    def _query(self, sql: str, args: tuple[Any, ...], *, stream: bool = False) -> Iterator[Any]:
        if stream:
            # A server-side cursor: millions of pairs stream through in constant memory.
            with self.conn.transaction(), self.conn.cursor(name="parity_pairs") as cur:
                cur.execute(sql, args)
                while True:
                    batch = cur.fetchmany(500)
                    if not batch:
                        break
                    yield from batch
            self.conn.commit()
            return
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        self.conn.commit()
        yield from rows

    def close(self) -> None:
        self.conn.close()


def open_store(url: str, *, readonly: bool = False) -> Store:
    """A store from its URL: ``postgresql://...`` or a sqlite file path."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    return SqliteStore(url, readonly=readonly)
