"""Fixtures shared by the test modules (support code they import lives in tests/support/)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from run_builders import SCHEMA


@pytest.fixture
def schema() -> dict[str, Any]:
    """The parity JSON report's schema, as shipped in the package."""
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return loaded
