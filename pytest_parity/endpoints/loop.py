"""Running the endpoint layer's coroutines from synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["run_sync"]


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

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return box[0]
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parity-loop") as pool:
        pool.submit(lambda: asyncio.run(main())).result()
    return box[0]
