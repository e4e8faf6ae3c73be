"""A TaskSpec for check tests that build records by hand (no contract file): the contract's
defaults, with the fields a test cares about given."""

from __future__ import annotations

from typing import Any

from pytest_parity.contract.spec import TaskSpec


def task_spec(name: str, **fields: Any) -> TaskSpec:
    values: dict[str, Any] = {
        "name": name,
        "source": "golden",
        "path": None,
        "scorer": "exact",
        "scorer_options": {},
        "tolerance": 0.05,
        "safety_critical": False,
        "alpha": 0.05,
        "min_items": 30,
        "inconclusive": "fail",
        "max_error_rate": 0.02,
        "error_direction": "preserve",
        "failure_min_count": 5,
        "params": {},
    }
    values.update(fields)
    return TaskSpec(**values)
