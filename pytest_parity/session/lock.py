"""The lock: digests of everything that decides the verdict, written once and checked later.

``--parity-lock=PATH`` writes, as JSON, one sha256 per input that determines a verdict: the
contract file, each task's data (a file, or every file under a folder), the recording a replay
endpoint answers from, the code of each task's
scorer (its module's source file), each judge prompt (the judge's prompt digest, template and
scale included) and the pytest-parity version; ``digest`` is the sha256 over all of them, the
one number a sign-off block carries. ``--parity-lock-check=PATH`` recomputes them before anything
is sent and stops the run (exit 4, one line) naming every entry that changed, appeared or went.

The endpoints' URLs are not in the lock: a migration changes them on purpose; the contract's
text, with its ``${VAR}`` placeholders, is.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from pytest_parity.contract.spec import Contract, TaskSpec

FORMAT = "pytest-parity/lock"
VERSION = 1


class LockError(Exception):
    """A lock file that cannot be read, or inputs that no longer match it (one line)."""


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of every file under a folder (relative names included)."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _scorer_file(task: TaskSpec) -> Path | None:
    """The source file of the task's scorer: a registered one's module, or ``module:function``."""
    import importlib
    import sys

    from pytest_parity import registry

    try:
        if task.scorer in registry.scorers:
            fn: Any = registry.scorers.get(task.scorer)
            source = inspect.getsourcefile(fn)
            return Path(source) if source else None
        if ":" in task.scorer:
            name = task.scorer.partition(":")[0]
            module = sys.modules.get(name) or importlib.import_module(name)
            source = inspect.getsourcefile(module)
            return Path(source) if source else None
    except (ImportError, TypeError, OSError, KeyError):
        return None
    return None


def entries(contract: Contract, version: str) -> dict[str, str]:
    """Name -> digest of every input of the verdict, in a stable order."""
    out: dict[str, str] = {
        "contract": contract.digest,  # sha256 of the contract file's text
        "pytest-parity version": _text_digest(version),
    }
    for endpoint in (contract.baseline, contract.candidate, contract.judge):
        # a replayed stack's answers are as much an input as the data it answered
        if endpoint is not None and endpoint.recording is not None and endpoint.recording.is_file():
            out[f"recording of the {endpoint.role}"] = file_digest(endpoint.recording)
    for task in contract.tasks:
        if task.path is not None and task.path.exists():
            out[f"data of task {task.name}"] = file_digest(task.path)
        scorer = _scorer_file(task)
        if scorer is not None and scorer.is_file():
            out[f"scorer code of task {task.name} ({task.scorer})"] = file_digest(scorer)
        prompt = task.scorer_options.get("prompt_digest")
        if task.judge is not None and isinstance(prompt, str):
            out[f"judge prompt of task {task.name}"] = prompt
    return out


def digest_of(found: Mapping[str, str]) -> str:
    """The one digest over every entry (what a sign-off block shows)."""
    return _text_digest(json.dumps(dict(sorted(found.items())), separators=(",", ":")))


def lock_record(contract: Contract, version: str) -> dict[str, Any]:
    found = entries(contract, version)
    return {"format": FORMAT, "version": VERSION, "digest": digest_of(found), "entries": found}


def write_lock(record: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_lock(path: Path) -> dict[str, str]:
    """The entries of a lock file; LockError with a one-line message when it is not one."""
    where = f"--parity-lock-check={path}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LockError(
            f"{where}: file not found (hint: write one first with --parity-lock={path})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LockError(f"{where}: not a lock file ({type(exc).__name__})") from None
    found = doc.get("entries") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(found, dict)
        or not all(isinstance(v, str) for v in found.values())
    ):
        raise LockError(f"{where}: not a {FORMAT} file (hint: write one with --parity-lock=PATH)")
    return {str(k): str(v) for k, v in found.items()}


def differences(locked: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """What changed since the lock, one phrase per entry, in the lock's order."""
    out = [
        f"{k} changed (locked {v[:12]}, now {now[k][:12]})"
        for k, v in locked.items()
        if k in now and now[k] != v
    ]
    out += [f"{k} is no longer there" for k in locked if k not in now]
    out += [f"{k} is new" for k in now if k not in locked]
    return out


def check_lock(path: Path, record: Mapping[str, Any]) -> None:
    """Raise LockError naming what changed when ``record`` does not match the lock at ``path``."""
    changed = differences(read_lock(path), record["entries"])
    if changed:
        raise LockError(
            f"--parity-lock-check={path}: the inputs of the verdict changed since the lock: "
            + "; ".join(changed)
            + " (hint: restore them, or write a new lock with --parity-lock=PATH and have it"
            " signed again)"
        )


def apply_lock(config: pytest.Config, contract: Contract) -> dict[str, Any] | None:
    """The plugin's step: write and/or check the lock before anything is sent; the record the
    report's sign-off block shows (None in xdist workers: the controller did it)."""
    import pytest

    from pytest_parity import __version__
    from pytest_parity.session.options import is_worker, path_option

    if is_worker(config):
        return None
    record = lock_record(contract, __version__)
    check = path_option(config, "lock-check")
    target = path_option(config, "lock")
    if check is not None:
        try:
            check_lock(check, record)
        except LockError as exc:
            raise pytest.UsageError(str(exc)) from None
    if target is not None:
        write_lock(record, target)
    return {
        "digest": record["digest"],
        "entries": record["entries"],
        "written": None if target is None else str(target),
        "checked": None if check is None else str(check),
    }
