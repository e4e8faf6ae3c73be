"""run_sync: the coroutine's result comes back whole, and nothing formats it on the way."""

from __future__ import annotations

import asyncio

from pytest_parity.endpoints.loop import run_sync


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
