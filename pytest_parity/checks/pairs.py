"""The paired items of a task: those both stacks answered, and the exact sign test the checks use.

An item counts only when neither side had an infrastructure failure (direction X), so a flaky
network never looks like a model change.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_parity.records import ItemRecord, SideRecord
from pytest_parity.scoring.categories import INFRA

EXAMPLES = 5  # item ids named in a reason


def one_sided_p(k_more: int, k_less: int) -> float:
    """Exact P(at least k_more of k_more + k_less discordant items go one way | no change)."""
    if k_more == 0:
        return 1.0  # no item moved the tested way: nothing to test (and no scipy import)
    from pytest_parity.stats.intervals import one_sided_exact

    return one_sided_exact(k_more, k_less)


def infra(side: SideRecord) -> bool:
    """Whether this answer failed for a reason outside the model (transport, server error)."""
    return side["direction"] == "X" or side["category"] in INFRA


def paired(records: Sequence[ItemRecord]) -> list[ItemRecord]:
    """The items neither stack failed to answer."""
    return [r for r in records if not infra(r["baseline"]) and not infra(r["candidate"])]


def show_ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:EXAMPLES])
    return shown + (", ..." if len(ids) > EXAMPLES else "")


def show_p(p: float) -> str:
    return f"{p:.2g}"
