"""Which checks a report shows, in which order and under which headings: read from the registry.

A check registered from a conftest.py appears in every report without touching this package; a
result whose check is not registered in this process (a JSON report read elsewhere) is shown after
the registered ones, under its own name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _registered() -> list[str]:
    from pytest_parity import registry

    return list(registry.checks)


def shown(tasks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The check names any task reports (``delta:<metric>`` rows excluded), registry order first."""
    present: set[str] = set()
    for t in tasks:
        checks = t.get("checks")
        if isinstance(checks, Mapping):
            # a check with several tests (buckets:0-2k, buckets:trend) is one column
            present.update(str(k).split(":", 1)[0] for k in checks)
    order = [n for n in _registered() if n in present]
    return order + sorted(present - set(order))


def status(checks: Mapping[str, Any], name: str) -> str | None:
    """The status of check ``name`` in a task's results: its own, or the worst of its tests
    (``name:...``) when it makes several; None when the task did not run it."""
    from pytest_parity.records import Status, worst

    found = checks.get(name)
    if isinstance(found, Mapping):
        return str(found.get("status"))
    # A damaged result (a test that is not a mapping, a status that is no status) never
    # crashes a report: only the statuses worst() knows take part.
    known: dict[Any, Status] = {s: s for s in ("PASS", "SKIP", "INCONCLUSIVE", "FAIL", "ERROR")}
    parts = [
        known[c.get("status")]
        for k, c in checks.items()
        if str(k).startswith(name + ":") and isinstance(c, Mapping) and c.get("status") in known
    ]
    return worst(parts) if parts else None


def ordered(names: Iterable[str]) -> list[str]:
    """``names`` in registry order, extra-metric rows after their check, unknown ones last."""
    names = list(names)
    rank = {n: i for i, n in enumerate(_registered())}
    return sorted(names, key=lambda n: (rank.get(n.split(":", 1)[0], len(rank)), n))


def _attr(name: str, attr: str) -> str:
    from pytest_parity import registry

    base = name.split(":", 1)[0]
    if base in registry.checks:
        try:
            value = getattr(registry.checks.get(base), attr, "")
        except Exception:  # a check that cannot be imported here still gets its name shown
            value = ""
        if value:
            return str(value) + (f" ({name.split(':', 1)[1]})" if ":" in name else "")
    return name.replace("_", " ")


def title(name: str) -> str:
    """The heading of a check ("No new failure modes"), else its name."""
    return _attr(name, "title")


def column(name: str) -> str:
    """The terminal column of a check ("failure modes"), else its name."""
    return _attr(name, "column")
