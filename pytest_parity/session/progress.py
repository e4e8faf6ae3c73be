"""The progress line of a long task: done / total per stack, rate and ETA, every few seconds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from pytest_parity.runner import Progress

PROGRESS_AFTER_S = 5.0  # a task shorter than this prints no progress line
PROGRESS_EVERY_S = 10.0


class ProgressLines:
    """Called by the runner with its :class:`~pytest_parity.runner.Progress`; writes a line to
    the terminal when a task has run longer than ``PROGRESS_AFTER_S``, then every
    ``PROGRESS_EVERY_S``, and once at its end. Silent under ``-q`` and in xdist workers."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._shown = -1.0
        self._silent: bool | None = None  # read on the first answer: options are parsed by then

    def __call__(self, progress: Progress) -> None:
        # Called on every answer: the common case (nothing to show yet) is a few comparisons.
        silent = self._silent
        if silent is None:
            config = self.config
            silent = self._silent = config.get_verbosity() < 0 or hasattr(config, "workerinput")
        if silent:
            return
        now = time.monotonic()
        elapsed = now - progress.started
        if elapsed < PROGRESS_AFTER_S:
            return
        first = self._shown < progress.started
        total = 2 * progress.total
        done = sum(progress.done.values())
        if not first and now - self._shown < PROGRESS_EVERY_S and done < total:
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if tr is None or capman is None:
            return
        self._shown = now
        rate = done / max(elapsed, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        with capman.global_and_fixture_disabled():
            tr.write_line(
                f"[parity] {progress.task}: baseline {progress.done['baseline']}/{progress.total},"
                f" candidate {progress.done['candidate']}/{progress.total},"
                f" {rate:.1f} requests/s, ETA {eta:.0f}s"
            )
