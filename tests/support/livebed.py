"""The real-model test bed for live tests: llama.cpp servers of SmolLM2, started once per module.

A test module asks for a pair with ``pair = livebed.pair_fixture("F32", "Q4_1")``; the fixture
skips, with the set-up command in the reason, when llama-cpp-python or a model file is missing.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

LIVE = Path(__file__).resolve().parents[2] / "example_suite" / "live"
SETUP_HINT = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"


def servers() -> ModuleType:
    """example_suite/live/servers.py, imported once."""
    name = "parity_live_servers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LIVE / "servers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(*precisions: str) -> Iterator[dict[str, str]]:
    """Start one server per precision (e.g. "F32", "Q2_K"); yields precision -> base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    bed = servers()
    files = {p: bed.model_file(p) for p in precisions}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        pytest.skip(f"model files missing: {', '.join(missing)}; {SETUP_HINT}")
    with bed.serve_many(files) as urls:
        yield urls


def pair_fixture(*precisions: str) -> Callable[..., Any]:
    """A module-scoped fixture serving these precisions (assign it to the fixture's name)."""

    @pytest.fixture(scope="module")
    def _pair() -> Iterator[dict[str, str]]:
        yield from serve(*precisions)

    return _pair
