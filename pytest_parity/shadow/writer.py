"""The store's writer: records from the event loop, batched into one background thread.

The loop only calls ``submit`` (``put_nowait`` on a bounded queue); the thread owns the store's
connection, writes a batch of ``batch`` rows or whatever came within ``flush_seconds`` in one
transaction, retries a failed batch twice, and enforces retention after a write. When the store
cannot keep up the queue fills and records are dropped and counted: the proxy never waits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from pytest_parity.store.pairs import Store, open_store, record_values

log = logging.getLogger("pytest_parity.shadow")


class StoreWriter:
    """Batches records from the event loop into one writer thread (never blocks the loop).

    ``submit`` is ``put_nowait`` on a bounded queue: when the store cannot keep up, records are
    dropped and counted (``on_drop``), the proxy never waits for the disk or the database.
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
        self._q: queue.Queue[tuple[Any, ...] | None] = queue.Queue(max_pending)
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
        try:
            self._q.put_nowait(record_values(rec))
        except queue.Full:
            if self._on_drop is not None:
                self._on_drop()

    def pending(self) -> int:
        return self._q.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop (bounded by ``timeout``)."""
        if self._thread is None:
            return
        self._q.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            store = open_store(self.url)
        except BaseException as exc:
            self._fail = exc
            self._ready.set()
            return
        self._ready.set()
        rows: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + self.flush_seconds
        next_retention = time.monotonic()
        stop = False
        try:
            while not stop:
                timeout = max(0.0, deadline - time.monotonic())
                try:
                    item = self._q.get(timeout=timeout if rows else max(timeout, 0.2))
                    if item is None:
                        stop = True
                    else:
                        rows.append(item)
                except queue.Empty:
                    pass
                now = time.monotonic()
                flushed = False
                if rows and (len(rows) >= self.batch or now >= deadline or stop):
                    self._flush(store, rows)
                    rows = []
                    flushed = True
                if not rows:
                    deadline = time.monotonic() + self.flush_seconds
                # Retention after a flush, at most every retention_check_seconds.
                if flushed and any(x is not None for x in self.retention) and now >= next_retention:
                    next_retention = now + self.retention_check_seconds
                    try:
                        store.enforce_retention(*self.retention)
                    except Exception as exc:
                        log.warning("parity-shadow: retention failed: %s", exc)
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
