"""Starts the example's two stacks before the plugin reads the contract.

The contract names its endpoints as ${PARITY_EXAMPLE_BASELINE_URL} and
${PARITY_EXAMPLE_CANDIDATE_URL}; pytest-xdist workers inherit the variables and query the servers
the main process started.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_servers: list[object] = []


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PARITY_EXAMPLE_BASELINE_URL"):
        return  # an xdist worker, or servers the user started: reuse them
    from stacks import serve

    for stack in ("baseline", "candidate"):
        server, url = serve(stack)
        _servers.append(server)
        os.environ[f"PARITY_EXAMPLE_{stack.upper()}_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in _servers:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
    if _servers:
        for stack in ("baseline", "candidate"):
            os.environ.pop(f"PARITY_EXAMPLE_{stack.upper()}_URL", None)
    _servers.clear()
