"""The response cache: answers already paid for are not asked for again.

One sqlite file (WAL, so xdist workers and a restarted run share it safely). A key is the hash of
the endpoint's identity (role, kind, base URL, model, API, parameters, engine version where the
server tells it), the request's hash, the prompt template and the repeat index. The role is part of
the identity, so baseline and candidate never share an entry even when they are the same server.

Every answer is committed as it arrives: a run killed with SIGKILL and started again resends only
the requests it had not received. Failed responses are never stored, so a rerun retries them.
API keys are never part of a key or a stored value (the endpoint identity holds no secrets).

Group commit: ``aput`` queues its row and waits; one callback, 2 ms after the first queued row,
writes every row queued by then in one transaction, then wakes the waiters. ``aput`` returns
only once its row is committed, so the durability promise holds, and a burst of answers costs
one commit, not one each (a commit is 0.2-0.5 ms on a busy machine, more than the client's whole
cost per request). A writer thread was measured first: waking it for every row (GIL hand-offs,
one self-pipe write per answer) cost more than the commits it saved.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_Row = tuple[str, str, str, int, str, float]

CACHE_FILE = "responses.sqlite3"
FLUSH_WINDOW_S = 0.002
BUSY_TIMEOUT_S = 30.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    item_id TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def _with_busy_retry(op: Callable[[], object], attempts: int = 8) -> None:
    """Run ``op``, retrying "database is locked" with a bounded backoff (0.05 s doubling, about
    6 s in all): the busy timeout does not cover every lock taken while a journal mode changes."""
    delay = 0.05
    for n in range(attempts):
        try:
            op()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or n == attempts - 1:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def canonical_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no whitespace), hex."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CacheError(RuntimeError):
    """The cache file cannot be used; the message says which file and what to do."""


class ResponseCache:
    """Successful responses by endpoint identity + request; see the module docstring.

    ``refresh=True`` ignores what is stored (every request is sent) but still stores the new
    answers, replacing the old ones.
    """

    def __init__(self, directory: str | Path, *, refresh: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CACHE_FILE
        self.refresh = refresh
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.commits = 0
        self.read_errors = 0
        self.last_read_error: str | None = None
        self.write_errors = 0
        self.last_write_error: str | None = None
        self._pending: list[tuple[_Row, asyncio.Future[None]]] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            _with_busy_retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            _with_busy_retry(lambda: self._db.execute(SCHEMA))
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"{self.path}: cannot open the response cache: {exc} "
                "(hint: choose another --parity-cache-dir, or run with --parity-no-cache)"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        # Used from the event loop's thread, which need not be the one that opened the cache.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        # Before any other statement: switching to WAL takes a lock the other xdist workers
        # opening the same file at the same moment also want; wait for it instead of failing.
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        # Durability is the explicit commit below; no implicit transactions around SELECTs.
        db.isolation_level = None
        # A killed process loses nothing under WAL without fsync (the OS holds the pages); only
        # power loss could drop the last answers, and those are simply asked again.
        db.execute("PRAGMA synchronous=OFF")
        return db

    @staticmethod
    def endpoint_key(identity: Mapping[str, Any]) -> str:
        """The hash of an endpoint identity (a dict without secrets)."""
        return canonical_hash(dict(identity))

    @staticmethod
    def key(
        endpoint_key: str, request_hash: str, repeat: int = 0, template: str | None = None
    ) -> str:
        # The parts are hex digests, an int and free text last: joining them is unambiguous.
        text = f"{endpoint_key}:{request_hash}:{repeat}:{template or ''}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response dict for ``key``, or None (always None when refreshing)."""
        if self.refresh:
            self.misses += 1
            return None
        try:
            row = self._db.execute(
                "SELECT response FROM responses WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            # A broken cache costs a request, never an answer.
            self.read_errors += 1
            self.last_read_error = f"{self.path}: {exc}"
            row = None
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        value: dict[str, Any] = json.loads(row[0])
        return value

    def _row(
        self, key: str, response: Mapping[str, Any], endpoint_key: str, item_id: str, repeat: int
    ) -> _Row:
        if response.get("error"):
            raise ValueError("failed responses are not cached (they must be retried next run)")
        text = json.dumps(dict(response), ensure_ascii=False, separators=(",", ":"))
        return (key, endpoint_key, item_id, repeat, text, time.time())

    async def aput(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        endpoint_key: str,
        item_id: str,
        repeat: int = 0,
    ) -> None:
        """Store one successful response; returns once it is committed (see the module doc)."""
        row = self._row(key, response, endpoint_key, item_id, repeat)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            # A short window gathers the answers of a burst into one commit; against LLM
            # latencies (tens of ms and up) the wait is invisible.
            loop.call_later(FLUSH_WINDOW_S, self._flush)
        self._pending.append((row, fut))
        await fut

    def put(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        endpoint_key: str,
        item_id: str,
        repeat: int = 0,
    ) -> None:
        """Store one successful response now (committed before returning)."""
        self._commit([self._row(key, response, endpoint_key, item_id, repeat)])

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._commit([row for row, _ in batch])
        for _, fut in batch:
            if not fut.done():  # its request may have been cancelled meanwhile
                fut.set_result(None)

    def _commit(self, rows: list[_Row]) -> None:
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO responses"
                " (key, endpoint, item_id, repeat, response, created) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
            self.writes += len(rows)
            self.commits += 1
        except sqlite3.Error as exc:
            # A full disk must not fail the run's answers: they are returned all the same and
            # counted here for the plugin to report; the next run asks those requests again.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self.write_errors += len(rows)
            self.last_write_error = f"{self.path}: {exc}"

    def count(self, endpoint_key: str | None = None) -> int:
        if endpoint_key is None:
            row = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM responses WHERE endpoint = ?", (endpoint_key,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Write what is still queued, then close."""
        self._flush()
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, refresh={self.refresh})"
