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
    where it will run, so none is ever left un-awaited."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parity-loop") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
