"""Running the endpoint layer's coroutines from synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["collector_tuned", "run_sync"]

# The cyclic collector while a run's loop turns (see collector_tuned).
RUN_GC_THRESHOLD0 = 10_000
_tuned_lock = threading.Lock()
_tuned_depth = 0
_saved_threshold: tuple[int, ...] = ()


@contextlib.contextmanager
def collector_tuned() -> Iterator[None]:
    """Python's cyclic garbage collector tuned for a run of many requests, restored after.

    Two costs of the default collector grow with what the process already holds rather than
    with the run: every full collection walks every object tracked since start-up (pytest,
    httpx, aiohttp, numpy... several hundred thousand), and the first generation is collected
    every 700 allocations, each answer allocating dozens of short-lived objects. Measured on a
    5,000-item task (bench/gate_speed.py, latency 0, c=32): 0.55 s of collection in a 3.0 s
    run, 0.13 s tuned. So while the loop runs, the objects that existed before it are frozen
    out of the scans (``gc.freeze``) and the first generation is collected every
    :data:`RUN_GC_THRESHOLD0` allocations; cycles are still found and freed, and both settings
    come back when the outermost run ends. A process that switched the collector off is left
    as it is.
    """
    global _tuned_depth, _saved_threshold
    if not gc.isenabled():
        yield
        return
    with _tuned_lock:
        if _tuned_depth == 0:
            _saved_threshold = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(RUN_GC_THRESHOLD0, _saved_threshold[0]), *_saved_threshold[1:])
        _tuned_depth += 1
    try:
        yield
    finally:
        with _tuned_lock:
            _tuned_depth -= 1
            if _tuned_depth == 0:
                gc.set_threshold(*_saved_threshold)
                gc.unfreeze()


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(make())``, also when this thread already runs an event loop (an async test,
    a notebook): then in a thread of its own, with its own loop. ``make`` builds the coroutine
    where it will run, so none is ever left un-awaited.

    The result leaves through a box, not as the main task's result: on the way out asyncio.run
    restores the SIGINT handler, and the ``signal`` module's enum conversion of the handler it
    replaces formats that handler, a partial holding the main task, with its result. For a task
    run that is the repr of every record: 0.14 s and a 2.9 MB string per 5,000 items, growing
    with the task (57 MB at 100,000 items)."""
    box: list[T] = []

    async def main() -> None:
        box.append(await make())

    def run() -> None:
        with collector_tuned():
            asyncio.run(main())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return box[0]
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parity-loop") as pool:
        pool.submit(run).result()
    return box[0]
