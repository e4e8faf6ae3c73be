"""The response cache: answers already paid for are not asked for again.

One sqlite file (WAL, so xdist workers and a restarted run share it safely). A key is the hash of
the endpoint's identity (role, kind, base URL and request URL, model, API, parameters, the headers
it sends, secret values hashed, every other spec field that shapes a request, engine version and
weights where the server tells them), the request's hash, the prompt template and the repeat
index. The role is part of the identity, so baseline and candidate never share an entry even
when they are the same server.

Modes (``--parity-cache``): ``resume`` (the default) reuses answers only to finish a run that did
not finish: the same contract (digest) and the same endpoint identity, and no run of them marked
finished since. ``runs`` holds, per (contract digest, endpoint key), the current generation, the
session that last began it and whether it finished; every row carries the ``run`` tag
(``contract:generation``) it was written under and is reused only under that tag. A run that ends
(the plugin calls :meth:`ResponseCache.finish_run`) closes its generation; the next one begins a
new generation and sends everything again. ``reuse`` reuses any stored answer (across completed
runs, on purpose); ``refresh`` reads nothing and replaces what it sends. xdist workers of one
pytest run share one session token, so they begin the same generation.

Every answer is committed as it arrives: a run killed with SIGKILL and started again resends only
the requests it had not received (and those answered in the last instant, at most 10 ms, whose
commit had not run). Failed responses are never stored, so a rerun retries them.
API keys are never part of a key or a stored value (the endpoint identity holds no secrets).

Group commit: ``aput`` queues its row and waits; the batch is written in one transaction, then
its waiters wake. ``aput`` returns only once its row is committed, so the durability promise
holds, and a burst of answers costs one commit, not one each (a commit is 0.2-0.5 ms on a busy
machine, more than the client's whole cost per request). The batch is committed at the loop's
next turn once no request the cache missed is still being answered (``Endpoint.complete`` counts
them: nothing more can join, so waiting would only delay), else once no answer has joined it for
2 ms (a trickle of slow answers is not held back), else when its first row has waited 10 ms.
At concurrency 32 against an instant server that cut the task's CPU ~10% against a fixed 2 ms
window (fewer, larger commits, and the woken items resumed together); at concurrency 1 an answer
no longer waits the 2 ms at all. A writer thread was measured first: waking it for every row
(GIL hand-offs, one self-pipe write per answer) cost more than the commits it saved.

Batched reads: ``aget`` queues its key; one callback, at the loop's next turn, looks up every key
queued by then in one ``SELECT ... WHERE key IN (...)`` (the window of items the runner keeps in
flight asks its keys together). A lookup of one key cost ~28 us on a busy 2-core machine, one key
of a batch of 128 ~11 us. A run that begins a new generation under ``resume`` (the first run of a
contract, or the one after a finished run) asks the file only for keys it has itself written
under that tag (two tasks asking the same question): no other row can carry the tag, so every
other lookup would miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

_Row = tuple[str, str, str, int, str, float, str]

_T = TypeVar("_T")

CACHE_FILE = "responses.sqlite3"
# Group commit (see the module docstring): a batch is committed once no request the cache
# missed is still being answered, or no answer joined it for FLUSH_QUIET_S, or its first row
# has waited FLUSH_MAX_S.
FLUSH_QUIET_S = 0.002
FLUSH_MAX_S = 0.010
LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...): under SQLite's oldest variable limit (999)
BUSY_TIMEOUT_S = 30.0
MODES = ("resume", "reuse", "refresh")
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    item_id TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL,
    run TEXT NOT NULL DEFAULT ''
)
"""
RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    contract TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    generation INTEGER NOT NULL,
    session TEXT NOT NULL,
    finished INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (contract, endpoint)
)
"""


def _with_busy_retry(op: Callable[[], _T], attempts: int = 8) -> _T:
    """Run ``op``, retrying "database is locked" with a bounded backoff (0.05 s doubling, about
    6 s in all): the busy timeout does not cover every lock taken while a journal mode changes."""
    delay = 0.05
    for n in range(attempts):
        try:
            return op()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or n == attempts - 1:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable: the last attempt returns or raises")


# Built once: json.dumps with options builds an encoder per call (~1 us of a 3 us hash).
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def canonical_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no whitespace), hex."""
    return hashlib.sha256(_canonical(value).encode("utf-8")).hexdigest()


def run_finished(exitstatus: int, error_tasks: list[str]) -> bool:
    """Whether a pytest run counts as finished for ``resume``: it got to its end (exit status
    0 tests passed, 1 some failed, 5 none collected) and no task ended as an ERROR (an endpoint
    down, a time budget spent): such a run resumes next time instead of starting afresh."""
    return exitstatus in (0, 1, 5) and not error_tasks


class _Written:
    """The keys written under one run tag, as a fixed bitmap of their hashes (1 MiB, whatever
    the task's size: a set of 200,000 keys cost ~150 bytes an item). ``maybe`` is never False
    for a key added; a True for one never added (about 2% at 200,000 keys) only costs the
    lookup it would have made anyway."""

    BITS = 1 << 23

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS >> 3)

    def add(self, key: str) -> None:
        h = hash(key) & (self.BITS - 1)
        self._bits[h >> 3] |= 1 << (h & 7)

    def maybe(self, key: str) -> bool:
        h = hash(key) & (self.BITS - 1)
        return bool(self._bits[h >> 3] & (1 << (h & 7)))


class CacheError(RuntimeError):
    """The cache file cannot be used; the message says which file and what to do."""


class ResponseCache:
    """Successful responses by endpoint identity + request; see the module docstring.

    ``mode`` is ``resume``, ``reuse`` or ``refresh`` (see the module docstring); ``refresh=True``
    is ``mode="refresh"``: nothing stored is read (every request is sent), the new answers still
    replace the old ones. ``contract`` (its digest) and ``session`` (one token per pytest run,
    shared by its xdist workers) scope ``resume``.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        refresh: bool = False,
        mode: str = "resume",
        contract: str = "",
        session: str | None = None,
    ) -> None:
        import uuid

        if mode not in MODES:
            raise ValueError(f"cache mode {mode!r}: expected one of {', '.join(MODES)}")
        self.directory = Path(directory)
        self.path = self.directory / CACHE_FILE
        self.mode = "refresh" if refresh else mode
        self.refresh = self.mode == "refresh"
        self.contract = contract
        self.session = session or uuid.uuid4().hex
        self._runs: dict[str, str] = {}  # endpoint key -> run tag of this session
        # Run tags this object began afresh under resume -> the keys it has written under them:
        # no other row can carry such a tag, so any other key is a miss without a lookup.
        self._fresh: dict[str, _Written] = {}
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.commits = 0
        self.read_errors = 0
        self.last_read_error: str | None = None
        self.write_errors = 0
        self.last_write_error: str | None = None
        self._pending: list[tuple[_Row, asyncio.Future[None]]] = []
        self._first_queued = self._last_queued = 0.0  # loop times, of the queued batch
        self._timer: asyncio.Handle | None = None  # its commit
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # the loop that runs it
        self.asking = 0  # requests missed here and still being answered (Endpoint.complete)
        self._lookups: list[tuple[str, str | None, asyncio.Future[dict[str, Any] | None]]] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            _with_busy_retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            _with_busy_retry(lambda: self._db.execute(SCHEMA))
            _with_busy_retry(lambda: self._db.execute(RUNS_SCHEMA))
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            if "run" not in columns:  # a cache written before the modes: its rows resume nothing
                _with_busy_retry(
                    lambda: self._db.execute(
                        "ALTER TABLE responses ADD COLUMN run TEXT NOT NULL DEFAULT ''"
                    )
                )
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

    def begin(self, endpoint_key: str) -> str:
        """The run tag this session reads and writes under for one endpoint (see the module
        docstring): the unfinished generation it resumes, or a new one after a finished run."""
        tag = self._runs.get(endpoint_key)
        if tag is not None:
            return tag
        fresh = False
        try:
            generation, fresh = _with_busy_retry(lambda: self._begin(endpoint_key))
        except sqlite3.Error as exc:
            self.read_errors += 1
            self.last_read_error = f"{self.path}: {exc}"
            generation = 0  # nothing resumes under a tag no run began; answers still count
        tag = self._runs[endpoint_key] = f"{self.contract}:{generation}"
        if fresh and self.mode == "resume":
            self._fresh[tag] = _Written()
        return tag

    def _begin(self, endpoint_key: str) -> tuple[int, bool]:
        """(the generation this session reads and writes under, whether it began it now: then
        no row carries its tag yet)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT generation, session, finished FROM runs"
                " WHERE contract = ? AND endpoint = ?",
                (self.contract, endpoint_key),
            ).fetchone()
            fresh = True
            if row is None:
                generation = 1
            elif row[1] == self.session or not row[2]:
                generation = int(row[0])  # begun by this run's other worker, or resumed
                fresh = False
            else:
                generation = int(row[0]) + 1  # the last run finished: a new one starts afresh
            db.execute(
                "INSERT OR REPLACE INTO runs (contract, endpoint, generation, session, finished,"
                " updated) VALUES (?, ?, ?, ?, 0, ?)",
                (self.contract, endpoint_key, generation, self.session, time.time()),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return generation, fresh

    def finish(self) -> int:
        """Mark this session's runs finished (their answers resume no later run)."""
        return self.finish_run_on(self._db, self.contract, self.session)

    @classmethod
    def finish_run(cls, directory: str | Path, contract: str, session: str) -> int:
        """Mark the runs of ``session`` on ``contract`` finished, in the cache at ``directory``
        (what the xdist controller does once its workers are done); returns how many."""
        path = Path(directory) / CACHE_FILE
        if not path.exists():
            return 0
        cache = cls(directory, contract=contract, session=session)
        try:
            return cache.finish()
        finally:
            cache.close()

    @staticmethod
    def finish_run_on(db: sqlite3.Connection, contract: str, session: str) -> int:
        def go() -> int:
            cur = db.execute(
                "UPDATE runs SET finished = 1, updated = ? WHERE contract = ? AND session = ?",
                (time.time(), contract, session),
            )
            return int(cur.rowcount)

        return _with_busy_retry(go)

    def get(self, key: str, run: str | None = None) -> dict[str, Any] | None:
        """The stored response dict for ``key``, or None: always when refreshing; under
        ``resume`` unless it was written under ``run`` (the tag :meth:`begin` gave)."""
        if self.refresh or self._unwritten(key, run):
            self.misses += 1
            return None
        return self._answer(self._select([key]).get(key), run)

    def _unwritten(self, key: str, run: str | None) -> bool:
        """True when ``key`` cannot be stored under ``run``: a tag this object began afresh,
        and a key it has not written under it (the first run of a contract, or the run after
        a finished one, asks the file nothing; an xdist sibling's answers under the same tag
        are then not reused across tasks, which each run on one worker)."""
        written = self._fresh.get(run) if run is not None else None
        return written is not None and not written.maybe(key)

    async def aget(self, key: str, run: str | None = None) -> dict[str, Any] | None:
        """:meth:`get` from the event loop, looked up together with every other key asked in
        the same turn of the loop (see the module docstring)."""
        if self.refresh or self._unwritten(key, run):
            self.misses += 1
            return None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        if not self._lookups:
            loop.call_soon(self._lookup)
        self._lookups.append((key, run, fut))
        return await fut

    def _lookup(self) -> None:
        batch, self._lookups = self._lookups, []
        rows = self._select(list({key for key, _, _ in batch}))
        for key, run, fut in batch:
            if not fut.done():  # its request may have been cancelled meanwhile
                fut.set_result(self._answer(rows.get(key), run))

    def _select(self, keys: list[str]) -> dict[str, tuple[str, str]]:
        """{key: (response text, run tag)} of the stored keys among ``keys``."""
        found: dict[str, tuple[str, str]] = {}
        i = 0
        try:
            for i in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[i : i + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, text, run in self._db.execute(
                    f"SELECT key, response, run FROM responses WHERE key IN ({marks})", chunk
                ):
                    found[key] = (text, run)
        except sqlite3.Error as exc:
            # A broken cache costs a request, never an answer (counted per key not read).
            self.read_errors += len(keys) - i
            self.last_read_error = f"{self.path}: {exc}"
        return found

    def _answer(self, row: tuple[str, str] | None, run: str | None) -> dict[str, Any] | None:
        if row is None or (self.mode == "resume" and run is not None and row[1] != run):
            self.misses += 1
            return None
        try:
            value: dict[str, Any] = json.loads(row[0])
        except ValueError as exc:  # a row damaged on disk: asked again, never trusted
            self.read_errors += 1
            self.last_read_error = f"{self.path}: unreadable stored answer ({exc})"
            self.misses += 1
            return None
        self.hits += 1
        return value

    def _row(
        self,
        key: str,
        response: Mapping[str, Any],
        endpoint_key: str,
        item_id: str,
        repeat: int,
        run: str = "",
    ) -> _Row:
        if response.get("error"):
            raise ValueError("failed responses are not cached (they must be retried next run)")
        written = self._fresh.get(run)
        if written is not None:
            written.add(key)
        text = _compact_json(response if type(response) is dict else dict(response))
        return (key, endpoint_key, item_id, repeat, text, time.time(), run)

    async def aput(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        endpoint_key: str,
        item_id: str,
        repeat: int = 0,
        run: str = "",
    ) -> None:
        """Store one successful response; returns once it is committed (see the module doc)."""
        row = self._row(key, response, endpoint_key, item_id, repeat, run)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        now = self._last_queued = loop.time()
        if not self._pending:
            self._first_queued = now
        if self.asking and (self._timer is None or self._timer_loop is not loop):
            # (a timer of a loop that has ended, with rows of a cancelled run still queued,
            # would never fire: this loop commits them too)
            self._timer = loop.call_at(now + min(FLUSH_QUIET_S, FLUSH_MAX_S), self._due)
            self._timer_loop = loop
        self._pending.append((row, fut))
        if not self.asking:
            self._soon(loop)
        await fut

    def asked(self) -> None:
        """A request this cache missed is now being answered by its server (see :meth:`aput`)."""
        self.asking += 1

    def answered(self) -> None:
        """That request has its answer (or failed): call before :meth:`aput`."""
        self.asking -= 1
        if self.asking == 0 and self._pending:
            self._soon(asyncio.get_running_loop())

    def _soon(self, loop: asyncio.AbstractEventLoop) -> None:
        # Every answer that could join the batch is in it: commit at the loop's next turn.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_soon(self._due)
        self._timer_loop = loop

    def _due(self) -> None:
        """The group commit's timer: commit once no request the cache knows of is still being
        answered, or the answers pause, or the batch is old enough."""
        self._timer = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        at = min(self._last_queued + FLUSH_QUIET_S, self._first_queued + FLUSH_MAX_S)
        if self.asking > 0 and at > loop.time():  # answers are still arriving: let them join
            self._timer = loop.call_at(at, self._due)
            self._timer_loop = loop
        else:
            self._flush()

    def put(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        endpoint_key: str,
        item_id: str,
        repeat: int = 0,
        run: str = "",
    ) -> None:
        """Store one successful response now (committed before returning)."""
        self._commit([self._row(key, response, endpoint_key, item_id, repeat, run)])

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
                "INSERT OR REPLACE INTO responses (key, endpoint, item_id, repeat, response,"
                " created, run) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        """Answer the lookups and write what is still queued, then close."""
        if self._lookups:
            self._lookup()
        self._flush()
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, mode={self.mode!r})"
