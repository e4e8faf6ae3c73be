"""A request's segment: from a header, the model name, the path or a hook (first that gives one).

The hook is a function ``(path, headers, body) -> str | None`` named in the contract as
``file.py:function`` (relative to the contract) or ``module:function``; it never sees secret
headers, and a hook that raises counts as no answer (production is never harmed by it). Values
are cleaned to ``[A-Za-z0-9_.:/@+-]``, 64 characters, and bounded in number by ``bound`` (the
metrics' label limit: later segments are ``other``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from pytest_parity.shadow.config import ShadowConfig
from pytest_parity.shadow.pairs import SECRET_HEADERS

log = logging.getLogger("pytest_parity.shadow")
MODEL_RE = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){1,256})"')
SEGMENT_CLEAN_RE = re.compile(r"[^A-Za-z0-9_.:/@+-]")


def _load_hook(spec: str) -> Callable[..., Any]:
    mod, _, fn = spec.rpartition(":")
    if mod.endswith(".py"):
        s = importlib.util.spec_from_file_location(f"parity_shadow_hook_{Path(mod).stem}", mod)
        if s is None or s.loader is None:
            raise RuntimeError(f"cannot import {mod}")
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
    else:
        module = importlib.import_module(mod)
    f = getattr(module, fn, None)
    if not callable(f):
        raise RuntimeError(f"{spec}: no function {fn!r}")
    return f  # type: ignore[no-any-return]


class Segmenter:
    def __init__(self, cfg: ShadowConfig, bound: Callable[[str], str]) -> None:
        self.cfg = cfg
        self.bound = bound
        self.hook = _load_hook(cfg.segment_hook) if cfg.segment_hook else None

    def __call__(self, request: web.BaseRequest, body: bytes) -> str:
        value: str | None = None
        for src in self.cfg.segment_from:
            if src == "header":
                value = request.headers.get(self.cfg.segment_header)
            elif src == "model":
                m = MODEL_RE.search(body)
                value = m.group(1).decode("utf-8", "replace") if m else None
            elif src == "path":
                value = request.path
            elif src == "hook" and self.hook is not None:
                try:
                    got = self.hook(
                        request.path,
                        {
                            k: v
                            for k, v in request.headers.items()
                            if k.lower() not in SECRET_HEADERS
                        },
                        body,
                    )
                except Exception as exc:  # a broken hook never breaks production
                    log.warning("parity-shadow: segment hook failed: %s", exc)
                    got = None
                value = None if got is None else str(got)
            if value:
                break
        if not value:
            value = self.cfg.segment_default
        return self.bound(SEGMENT_CLEAN_RE.sub("_", value)[:64])
