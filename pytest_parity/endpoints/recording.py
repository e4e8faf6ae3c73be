"""Recorded baselines: the old stack's answers kept in a file, so it can be switched off.

A migration records the baseline once (``--parity-record=FILE``) and later runs compare candidates
against the recording through the ``replay`` endpoint kind. The file is JSON Lines, readable and
diffable: header lines carry provenance (engine, model, date, contract digest), response lines
carry one answer each, paired on replay by item id + repeat and checked by request hash.

Every line is self-contained and written with one ``write`` on a file opened for appending, so
several xdist workers can record into the same file; each writes its own (identical) header.
Only successful answers are recorded. Nothing secret is written: headers come from the endpoint's
``describe()``, which holds no keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.http import Endpoint, Request, Response, failure

FORMAT = 1
_PROVENANCE_KEYS = ("contract_digest", "model", "kind")


class RecordingError(ValueError):
    """A recording that cannot be used; ``str()`` is one line naming the file and the fix."""


class Recorder:
    """Appends one endpoint's answers to a recording file as they arrive."""

    def __init__(self, path: str | Path, *, contract_digest: str, truncate: bool = False) -> None:
        self.path = Path(path)
        self.contract_digest = contract_digest
        self.written = 0
        self.failures = 0
        self.error: str | None = None  # set when a line could not be written
        self._headers: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)

    def header(self, role: str, describe: Mapping[str, Any]) -> None:
        """Write the provenance line for ``role`` once (first call wins)."""
        if role in self._headers:
            return
        self._headers.add(role)
        line = {
            "type": "header",
            "format": FORMAT,
            "role": role,
            "contract_digest": self.contract_digest,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "kind": describe.get("kind"),
            "model": describe.get("model"),
            "base_url": describe.get("base_url"),
            "api": describe.get("api"),
            "params": describe.get("params"),
            "engine": describe.get("engine"),
        }
        self._write(line)

    def write(
        self, *, item_id: str, request_hash: str, repeat: int, response: Mapping[str, Any]
    ) -> None:
        if response.get("error"):
            return
        body = {k: v for k, v in response.items() if k != "cached"}
        ok = self._write(
            {
                "type": "response",
                "item_id": item_id,
                "repeat": repeat,
                "request_hash": request_hash,
                "response": body,
            }
        )
        self.written += ok

    def _write(self, line: Mapping[str, Any]) -> bool:
        if self._fd is None:
            raise RecordingError(f"{self.path}: the recorder is closed")
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            if os.write(self._fd, data) != len(data):
                raise OSError("short write (disk full?)")
        except OSError as exc:
            # An answer is never lost to a recording problem; the plugin checks ``error`` at the
            # end of the run and fails it, naming the file.
            self.failures += 1
            self.error = f"{self.path}: cannot write the recording: {exc.strerror or exc}"
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, written={self.written})"


class Recording:
    """A recording file loaded for replay."""

    def __init__(
        self, path: Path, header: dict[str, Any], entries: dict[tuple[str, int], dict[str, Any]]
    ):
        self.path = path
        self.header = header
        # (item id, repeat) -> {request hash: line}: two tasks may reuse an item id, and the
        # request hash tells their questions apart.
        self._entries = entries

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def lookup(self, item_id: str, request_hash: str, repeat: int = 0) -> dict[str, Any] | None:
        """The recorded line (``request_hash`` and ``response``) for this question, or None."""
        line: dict[str, Any] | None = self._entries.get((item_id, repeat), {}).get(request_hash)
        return line

    def has_item(self, item_id: str, repeat: int = 0) -> bool:
        return (item_id, repeat) in self._entries

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise RecordingError(
                f"{p}: cannot read the recording: {exc.strerror or exc} "
                "(hint: record one with --parity-record=PATH)"
            ) from None
        header: dict[str, Any] | None = None
        entries: dict[tuple[str, int], dict[str, Any]] = {}
        for n, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                kind = line["type"]
            except (ValueError, KeyError, TypeError):
                if n == len(lines):
                    continue  # a run killed mid-write leaves a partial last line: ignore it
                raise RecordingError(
                    f"{p}:{n}: not a recording line (hint: the file must come from --parity-record)"
                ) from None
            if kind == "header":
                if line.get("format") != FORMAT:
                    raise RecordingError(
                        f"{p}:{n}: recording format {line.get('format')!r} is not supported "
                        f"(hint: re-record the baseline with this version)"
                    )
                if header is None:
                    header = line
                else:
                    for key in _PROVENANCE_KEYS:
                        if line.get(key) != header.get(key):
                            raise RecordingError(
                                f"{p}:{n}: mixes recordings with different {key} "
                                f"({header.get(key)!r} vs {line.get(key)!r}) "
                                "(hint: record into a fresh file)"
                            )
            elif kind == "response":
                slot = entries.setdefault((str(line["item_id"]), int(line.get("repeat", 0))), {})
                slot[str(line["request_hash"])] = line
        if header is None:
            raise RecordingError(
                f"{p}: no header line: not a recording (hint: record one with --parity-record=PATH)"
            )
        return cls(p, header, entries)


class CapturedEndpoint(Endpoint):
    """``kind: captured``: the baseline is the production answer captured with each item of a
    traffic task (``Item.captured["baseline"]``), so the old stack need not run. The runner
    takes those answers from the item; this endpoint is only asked for items that have none,
    which stops the task: an answer made up for them would not be what production said."""

    @property
    def url(self) -> str:
        return "captured production answers"

    async def _probe(self) -> dict[str, Any]:
        return {"baseline": "captured production answers (no old stack running)"}

    async def _answer(self, request: Request) -> Response:
        return failure(
            f"{self.spec.role} (kind: captured): item {request.item_id!r} has no captured"
            " production answer (hint: with a traffic source set require_response: true so only"
            " records with an answer are selected, or point the baseline at the old stack)",
            "replay",
        )


class ReplayEndpoint(Endpoint):
    """Answers from a recording made with ``--parity-record`` (paired by item id and repeat,
    checked by request hash)."""

    def __init__(self, spec: EndpointSpec, **kw: Any) -> None:
        super().__init__(spec, **kw)
        if spec.recording is None:
            raise RecordingError(f"{spec.role}: a replay endpoint needs recording: <file>")
        self.recording = Recording.load(spec.recording)

    @property
    def url(self) -> str:
        return str(self.recording.path)

    async def _probe(self) -> dict[str, Any]:
        h = self.recording.header
        engine = dict(h.get("engine") or {})
        engine.update(
            {
                "recorded_kind": h.get("kind"),
                "recorded_model": h.get("model"),
                "recorded_base_url": h.get("base_url"),
                "recorded_at": h.get("date"),
                "contract_digest": h.get("contract_digest"),
            }
        )
        return engine

    async def _answer(self, request: Request) -> Response:
        where = f"{self.spec.role} replay {self.recording.path.name}"
        entry = self.recording.lookup(request.item_id, request.request_hash(), request.repeat)
        if entry is not None:
            return Response.from_dict(entry["response"], cached=False)
        hint = "(hint: re-record the baseline with --parity-record)"
        if self.recording.has_item(request.item_id, request.repeat):
            return failure(
                f"{where}: item {request.item_id!r} changed since it was recorded "
                f"(prompt or parameters differ) {hint}",
                "replay",
            )
        rep = f" repeat {request.repeat}" if request.repeat else ""
        return failure(
            f"{where}: no recorded answer for item {request.item_id!r}{rep} {hint}", "replay"
        )
