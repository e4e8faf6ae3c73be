"""Fixtures shared by the test modules (support code they import lives in tests/support/)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from run_builders import SCHEMA
from servers import FakeServer


@pytest.fixture
def schema() -> dict[str, Any]:
    """The parity JSON report's schema, as shipped in the package."""
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def fake_servers() -> Iterator[Callable[..., FakeServer]]:
    """Start real OpenAI-compatible servers on 127.0.0.1 (``FakeServer(answer, **kw)``); every
    server started is stopped when the test ends."""
    started: list[FakeServer] = []

    def start(*args: Any, **kw: Any) -> FakeServer:
        srv = FakeServer(*args, **kw).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def fake_stacks(
    fake_servers: Callable[..., FakeServer],
) -> Callable[..., tuple[FakeServer, FakeServer]]:
    """A baseline and a candidate server answering with ``old`` and ``new``."""

    def start(old: Any, new: Any, **kw: Any) -> tuple[FakeServer, FakeServer]:
        return fake_servers(answer=old, **kw), fake_servers(answer=new, **kw)

    return start
