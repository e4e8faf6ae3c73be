"""run_sync: the coroutine's result comes back whole, and nothing formats it on the way."""

from __future__ import annotations

import asyncio
import gc

from pytest_parity.endpoints.loop import RUN_GC_THRESHOLD0, run_sync


class Huge:
    """Stands for a task run of 100,000 records: formatting it would cost seconds."""

    reprs = 0

    def __repr__(self) -> str:
        Huge.reprs += 1
        return "Huge(...)"


async def produce() -> Huge:
    await asyncio.sleep(0)
    return Huge()


def test_the_result_is_never_formatted_on_the_way_out() -> None:
    # asyncio.run restores SIGINT on exit, and the signal module's enum conversion formats the
    # handler it replaces, which holds the main task: a task whose result is the run.
    Huge.reprs = 0
    got = run_sync(produce)
    assert isinstance(got, Huge) and Huge.reprs == 0


def test_inside_a_running_loop_it_runs_in_a_thread_of_its_own() -> None:
    got: list[Huge] = []

    async def outer() -> None:
        got.append(run_sync(produce))

    Huge.reprs = 0
    asyncio.run(outer())
    assert isinstance(got[0], Huge) and Huge.reprs == 0


# -- the collector while a run's loop turns ---------------------------------------------------


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


async def collector_inside() -> tuple[tuple[int, ...], int]:
    """The collector's settings as a coroutine run by run_sync sees them."""
    return gc.get_threshold(), gc.get_freeze_count()


def test_the_collector_is_tuned_while_the_loop_runs_and_restored_after() -> None:
    before = gc.get_threshold()
    threshold, frozen = run_sync(collector_inside)
    assert threshold == (max(RUN_GC_THRESHOLD0, before[0]), *before[1:])
    assert frozen > 1000  # what existed before the run
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_cycles_made_during_the_run_are_still_collected() -> None:
    import weakref

    async def inside() -> bool:
        ref = weakref.ref(Node())  # unreachable at once, held only by its own cycle
        junk = []
        for _ in range(3 * RUN_GC_THRESHOLD0):  # enough allocations for a collection
            junk.append([])
            if len(junk) % 5000 == 0:
                await asyncio.sleep(0)
        return ref() is None

    assert run_sync(inside)


def test_a_process_that_switched_the_collector_off_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.disable()
    try:
        seen = run_sync(collector_inside)
    finally:
        gc.enable()
    assert seen == (before, 0)


def test_nested_runs_restore_once_the_outermost_ends() -> None:
    before = gc.get_threshold()
    inner: dict[str, object] = {}

    async def innermost() -> None:
        inner["threshold"] = gc.get_threshold()

    async def outer() -> tuple[int, ...]:
        run_sync(innermost)  # a loop is running here: in a thread of its own
        return gc.get_threshold()

    after_inner = run_sync(outer)
    assert inner["threshold"] == after_inner != before  # still tuned after the inner run
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
