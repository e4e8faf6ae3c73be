"""The ``--parity-*`` options: each has an ini twin (pyproject.toml / pytest.ini); the command line
wins. Paths given on the command line are relative to the invocation directory, those in an ini
file to that file's folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

CACHE_MODES = ("resume", "reuse", "refresh", "off")


def option(config: pytest.Config, name: str) -> Any:
    key = f"parity_{name.replace('-', '_')}"
    value = config.getoption(key)
    if value in (None, False):
        value = config.getini(key)
    return value


def path_option(config: pytest.Config, name: str) -> Path | None:
    """A path option: relative to the invocation directory, or to the ini file when set there."""
    key = f"parity_{name.replace('-', '_')}"
    value = config.getoption(key)
    if value:
        return out_path(config, value)
    value = config.getini(key)
    if not value:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return Path(value) if Path(value).is_absolute() else base / value


def out_path(config: pytest.Config, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else config.invocation_params.dir / p


def cache_mode(config: pytest.Config) -> str:
    import pytest

    if option(config, "no-cache"):
        return "off"
    if option(config, "refresh"):
        return "refresh"
    mode = option(config, "cache") or "resume"
    if mode not in CACHE_MODES:
        raise pytest.UsageError(
            f"--parity-cache={mode}: expected resume, reuse, refresh or off"
            " (hint: reuse to answer from completed runs too)"
        )
    return str(mode)


def cache_session(config: pytest.Config) -> str:
    """One token per pytest run, the same in every xdist worker (see endpoints/cache.py)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("parity_cache_session"):
        return str(workerinput["parity_cache_session"])
    import uuid

    return uuid.uuid4().hex


def is_worker(config: pytest.Config) -> bool:
    """An xdist worker: it runs tasks; the controller reports them."""
    return hasattr(config, "workerinput")
