"""The gate's pytest session, split by concern; :mod:`pytest_parity.plugin` wires it together.

- :mod:`.options`: reading the ``--parity-*`` options and their ini twins (paths, cache mode);
- :mod:`.state`: :class:`ParitySession`, the per-process state of a gate run (runner wiring,
  one run and one result per task, the ``parity`` fixture's ``ask``);
- :mod:`.progress`: the progress line of a long task;
- :mod:`.transport`: how task results travel from xdist workers to the controller (on the test
  reports) and the controller's one-worker-per-task scheduler;
- :mod:`.outputs`: the end of the run (the verdict section, the files written, marking the
  response cache's run finished, closing recordings).

Only this package and the plugin import pytest.
"""

from __future__ import annotations

from pytest_parity.session.state import ParityRunError, ParitySession

__all__ = ["ParityRunError", "ParitySession"]
