"""Secrets: held masked, never written.

A key lives in a :class:`Secret`, whose ``repr`` and ``str`` are masked, from the moment it is
read from the environment: a traceback shown with ``pytest -l`` (showlocals) prints
``Secret('***')``, never the key. Request headers that carry one are a :class:`MaskedHeaders`,
a dict whose ``repr`` masks secret values.

Every secret an endpoint is configured with (its ``api_key_env`` value, the value of any header
whose name says it is a credential) is registered here, process-wide, when the endpoint opens.
:func:`scrub` and :func:`scrub_value` replace every registered value by ``***``: the endpoint
layer applies them where a :class:`~pytest_parity.endpoints.http.Response` (and engine facts)
are built from what a server sent, so a server that echoes a key back inside a 200 answer puts
it in no cache, recording, disagreement file, JSON or HTML report, or log: every copy downstream
is made from the scrubbed one.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_parity.contract.spec import EndpointSpec

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words of every answer
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|session|signature|credential", re.I)


class Secret:
    """A secret string: ``reveal()`` gives it, nothing else shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (it would leave the process in clear)")


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential (Authorization, x-api-key, *-token, cookies...)."""
    return bool(_SECRET_NAME.search(name))


class MaskedHeaders(dict[str, str]):
    """Request headers; their ``repr`` masks the values of secret headers."""

    def __repr__(self) -> str:
        return repr({k: MASK if is_secret_header(k) else v for k, v in self.items()})

    __str__ = __repr__


class FrozenHeaders(Mapping[str, str]):
    """An endpoint spec's configured headers: read-only, and their ``repr`` masks the values of
    secret headers, so a traceback shown with ``pytest -l`` that holds the spec (or its headers)
    prints ``'***'`` where a ``${VAR}``-expanded token would be."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"FrozenHeaders({MaskedHeaders(self._items)!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("configured headers are not pickled (they may hold a secret in clear)")


def read_secret(env: str | None) -> Secret | None:
    """The value of environment variable ``env`` as a registered Secret (None: unset or empty)."""
    if not env:
        return None
    value = os.environ.get(env)
    if not value:
        return None
    register(value)
    return Secret(value)


def spec_secrets(spec: EndpointSpec) -> list[str]:
    """The secret values an endpoint spec is configured with (its key, credential headers)."""
    out = [str(v) for k, v in spec.headers.items() if is_secret_header(k)]
    if spec.api_key_env and os.environ.get(spec.api_key_env):
        out.append(os.environ[spec.api_key_env])
    return out


def register_spec(spec: EndpointSpec) -> None:
    for value in spec_secrets(spec):
        register(value)


# ----------------------------------------------------------------------------------------------
# the process-wide scrubber

_lock = threading.Lock()
_values: tuple[str, ...] = ()  # longest first, so a key containing another is masked whole
_encoded: tuple[bytes, ...] = ()


def register(value: str) -> None:
    """Add a secret value to what :func:`scrub` masks."""
    global _values, _encoded
    if len(value) < MIN_SECRET_LEN:
        return
    with _lock:
        if value in _values:
            return
        _values = tuple(sorted({*_values, value}, key=len, reverse=True))
        _encoded = tuple(v.encode("utf-8") for v in _values)


def registered() -> tuple[str, ...]:
    return _values


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for value in _values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def scrub_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every registered secret masked; keys too."""
    if not _values:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            scrub(str(k)) if isinstance(k, str) else k: scrub_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


def may_hold_secret(raw: bytes) -> bool:
    """Whether a server's raw answer might contain a registered secret: one appears as it is,
    or JSON escapes (``\\u0073k-``, ``\\/``) could hide one. False lets the hot path skip work."""
    if not _encoded:
        return False
    if any(v in raw for v in _encoded):
        return True
    return b"\\u" in raw or b"\\/" in raw


def forget_all() -> None:
    """Tests only: drop every registered secret."""
    global _values, _encoded
    with _lock:
        _values, _encoded = (), ()
