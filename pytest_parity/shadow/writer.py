"""The store's writer: records from the event loop, batched into one background thread.

The loop only calls ``submit`` (an append to a bounded list under a lock); the thread owns the
store's connection, writes a batch of ``batch`` rows or whatever came within ``flush_seconds`` in
one transaction, retries a failed batch twice, and enforces retention after a write. The thread
is woken once per batch (a full batch, or the first row after a flush, so that its deadline is
kept), not once per row: a thread woken for every pair took the interpreter lock from the event
loop on every request. When the store cannot keep up the list fills and records are dropped and
counted: the proxy never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from pytest_parity.store.pairs import Store, open_store, record_values

log = logging.getLogger("pytest_parity.shadow")


class StoreWriter:
    """Batches records from the event loop into one writer thread (never blocks the loop).

    ``submit`` appends to a bounded list: when the store cannot keep up, records are dropped and
    counted (``on_drop``), the proxy never waits for the disk or the database.
    """

    def __init__(
        self,
        url: str,
        *,
        batch: int = 200,
        flush_seconds: float = 1.0,
        retention_days: float | None = None,
        retention_rows: int | None = None,
        retention_check_seconds: float = 60.0,
        max_pending: int = 100_000,
        on_written: Any = None,
        on_error: Any = None,
        on_drop: Any = None,
    ) -> None:
        self.url = url
        self.batch = batch
        self.flush_seconds = flush_seconds
        self.retention = (retention_days, retention_rows)
        self.retention_check_seconds = retention_check_seconds
        self.max_pending = max_pending
        self._rows: list[tuple[Any, ...]] = []  # submitted, not yet taken by the thread
        self._first_at = 0.0  # when the oldest of them came (monotonic)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._on_written = on_written
        self._on_error = on_error
        self._on_drop = on_drop
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._fail: BaseException | None = None
        self.written = 0

    def start(self) -> None:
        """Open the store in the writer thread (raises here if it cannot be opened)."""
        self._thread = threading.Thread(target=self._run, name="parity-shadow-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._fail is not None:
            raise self._fail

    def submit(self, rec: Mapping[str, Any]) -> None:
        row = record_values(rec)
        with self._lock:
            n = len(self._rows)
            if n >= self.max_pending:
                drop = True
            else:
                drop = False
                if not n:
                    self._first_at = time.monotonic()
                self._rows.append(row)
        if drop:
            if self._on_drop is not None:
                self._on_drop()
        elif n == 0 or n + 1 >= self.batch:
            # The first row starts the flush deadline, a full batch is written now; the rows
            # in between wake nobody.
            self._wake.set()

    def pending(self) -> int:
        return len(self._rows)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop (bounded by ``timeout``)."""
        if self._thread is None:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _take(self, everything: bool) -> list[tuple[Any, ...]]:
        """The next batch (``everything``: all rows), under the lock."""
        with self._lock:
            k = len(self._rows) if everything else min(len(self._rows), self.batch)
            rows, self._rows = self._rows[:k], self._rows[k:]
            if self._rows:
                self._first_at = time.monotonic()  # what is left waits at most another period
            return rows

    def _run(self) -> None:
        try:
            store = open_store(self.url)
        except BaseException as exc:
            self._fail = exc
            self._ready.set()
            return
        self._ready.set()
        next_retention = time.monotonic()
        try:
            while True:
                stop = self._stop
                pending = len(self._rows)
                if not pending and stop:
                    break
                now = time.monotonic()
                due = pending and now >= self._first_at + self.flush_seconds
                if pending >= self.batch or (pending and (due or stop)):
                    rows = self._take(everything=stop)
                    self._flush(store, rows)
                    # Retention after a flush, at most every retention_check_seconds.
                    if any(x is not None for x in self.retention) and now >= next_retention:
                        next_retention = now + self.retention_check_seconds
                        try:
                            store.enforce_retention(*self.retention)
                        except Exception as exc:
                            log.warning("parity-shadow: retention failed: %s", exc)
                    continue
                self._wake.clear()
                if self._stop or len(self._rows) != pending:
                    continue  # a row (or the stop) came between the checks above and the clear
                wait = self._first_at + self.flush_seconds - now if pending else None
                self._wake.wait(wait)
        finally:
            store.close()

    def _flush(self, store: Store, rows: list[tuple[Any, ...]]) -> None:
        for attempt in range(3):
            try:
                store.write(rows)
                self.written += len(rows)
                if self._on_written is not None:
                    self._on_written(len(rows))
                return
            except Exception as exc:
                log.warning("parity-shadow: store write failed (%s): %s", attempt + 1, exc)
                time.sleep(0.2 * (attempt + 1))
        if self._on_error is not None:
            self._on_error(len(rows))
