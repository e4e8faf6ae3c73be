"""The response cache: answers already paid for are not asked for again.

One sqlite file (WAL, so xdist workers and a restarted run share it safely). A key is the hash of
the endpoint's identity (role, kind, base URL, model, API, parameters, engine version where the
server tells it), the request's hash, the prompt template and the repeat index. The role is part of
the identity, so baseline and candidate never share an entry even when they are the same server.

Every answer is committed as it arrives: a run killed with SIGKILL and started again resends only
the requests it had not received. Failed responses are never stored, so a rerun retries them.
API keys are never part of a key or a stored value (the endpoint identity holds no secrets).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_FILE = "responses.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    item_id TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def canonical_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no whitespace), hex."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CacheError(RuntimeError):
    """The cache file cannot be used; the message says which file and what to do."""


class ResponseCache:
    """Successful responses by endpoint identity + request; see the module docstring.

    ``refresh=True`` ignores what is stored (every request is sent) but still stores the new
    answers, replacing the old ones.
    """

    def __init__(self, directory: str | Path, *, refresh: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CACHE_FILE
        self.refresh = refresh
        self.hits = 0
        self.misses = 0
        self.writes = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # The endpoint layer runs in one event loop thread, but the plugin may open the
            # cache on another thread than the one that uses it.
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL survives a killed process (only power loss can drop the tail).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"{self.path}: cannot open the response cache: {exc} "
                "(hint: choose another --parity-cache-dir, or run with --parity-no-cache)"
            ) from None

    @staticmethod
    def endpoint_key(identity: Mapping[str, Any]) -> str:
        """The hash of an endpoint identity (a dict without secrets)."""
        return canonical_hash(dict(identity))

    @staticmethod
    def key(
        endpoint_key: str, request_hash: str, repeat: int = 0, template: str | None = None
    ) -> str:
        return canonical_hash([endpoint_key, request_hash, repeat, template])

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response dict for ``key``, or None (always None when refreshing)."""
        if self.refresh:
            self.misses += 1
            return None
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put(
        self,
        key: str,
        response: Mapping[str, Any],
        *,
        endpoint_key: str,
        item_id: str,
        repeat: int = 0,
    ) -> None:
        """Store one successful response now (committed before returning)."""
        if response.get("error"):
            raise ValueError("failed responses are not cached (they must be retried next run)")
        text = json.dumps(dict(response), ensure_ascii=False, separators=(",", ":"))
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, endpoint, item_id, repeat, response, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, endpoint_key, item_id, repeat, text, time.time()),
        )
        self._db.commit()
        self.writes += 1

    def count(self, endpoint_key: str | None = None) -> int:
        if endpoint_key is None:
            row = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM responses WHERE endpoint = ?", (endpoint_key,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, refresh={self.refresh})"
