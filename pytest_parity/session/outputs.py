"""The end of a gate run: the verdict section of the terminal summary, the files written
(disagreements, JSON, Markdown, HTML), the response cache's run marked finished, recordings
and the cache closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_parity.session.options import is_worker, path_option

if TYPE_CHECKING:
    import pytest

    from pytest_parity.records import RunResult
    from pytest_parity.session.state import ParitySession

# option -> the report function writing that file
TARGETS = (("json", "write_json"), ("markdown", "write_markdown"), ("report", "write_html"))


class RunEnd:
    """The plugin object holding the end-of-run hooks of a :class:`ParitySession`."""

    def __init__(self, session: ParitySession) -> None:
        self.session = session
        self.config = session.config

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        s = self.session
        if is_worker(self.config) or s.cache_mode() == "off":
            return
        from pytest_parity.endpoints.cache import CacheError, ResponseCache, run_finished

        errors = [r["task"] for r in s.collected.values() if r["verdict"] == "ERROR"]
        if not s.collected or not run_finished(int(exitstatus), errors):
            return  # an interrupted run, or one with ERROR tasks, resumes next time
        runner = s.started_runner
        cache = None if runner is None else runner.cache
        try:
            if cache is not None:
                cache.finish()
            else:  # xdist: the workers are done; mark their runs in the shared file
                ResponseCache.finish_run(s.cache_dir(), s.contract.digest, s.cache_session)
        except CacheError:
            pass  # an unusable cache was reported when it was opened

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        runner = self.session.started_runner
        if runner is None:
            return
        for recorder in runner.recorders.values():
            if recorder is not None:
                recorder.close()
        if runner.cache is not None:
            runner.cache.close()

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        if is_worker(self.config):
            return
        from pytest_parity.endpoints.progress import cache_line
        from pytest_parity.report.terminal import verdict_lines

        s = self.session
        run = s.run_result()
        tr = terminalreporter
        tr.write_sep("=", "parity verdict")
        if run is None:
            tr.write_line("no parity task ran")
            return
        for line in verdict_lines(run, self.write_outputs(run)):
            tr.write_line(line)
        tr.write_line(cache_line(run.get("cache", {"mode": s.cache_mode()})))
        runner = s.started_runner
        cache = None if runner is None else runner.cache
        if cache is not None and cache.write_errors:
            tr.write_line(
                f"warning: {cache.write_errors} answers could not be stored in the response cache"
                f" ({cache.last_write_error}); a rerun will ask for them again"
            )

    def write_outputs(self, run: RunResult) -> list[str]:
        """Every file the run's options ask for; returns one line per file written."""
        out = path_option(self.config, "out") or self.config.rootpath / "parity-out"
        out_dir = run_dir(out, self.session.contract.path.stem, self.session.started)
        written = write_disagreements(run, out_dir)
        for name, fn in TARGETS:
            target = path_option(self.config, name)
            if target is not None:
                from pytest_parity import report

                kwargs = {"append": True} if name == "markdown" else {}
                getattr(report, fn)(run, target, **kwargs)
                written.append(f"{name}: {target}")
        return written


def write_disagreements(run: RunResult, out_dir: Path) -> list[str]:
    """One JSONL file of sampled disagreements per task that has any."""
    written: list[str] = []
    for t in run["tasks"]:
        if not t["disagreements"]:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"disagreements-{t['task']}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for d in t["disagreements"]:
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        written.append(str(path))
    return written


def run_dir(out: Path, contract: str, started: str) -> Path:
    """This run's folder of disagreement files, ``<out>/<contract>/<start, UTC>``: a second run,
    of this contract or another with the same task names, never overwrites the first one's."""
    stamp = started.replace("-", "").replace(":", "").replace("+0000", "Z").replace("+00:00", "Z")
    base = out / contract / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return path
