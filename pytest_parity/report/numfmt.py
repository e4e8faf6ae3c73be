"""How a number reads in every report: one place for points, percents, counts, p-values, signs.

The HTML page, the Markdown summary, the pytest-html extras and the terminal section all show the
same figures; they read them from here so a delta, an arrow or a p-value never looks different
from one place to the next:

* points: a 0-1 quantity x100 with two decimals and a true minus sign (``−0.40``), ``+`` when
  signed; a value that rounds to zero is ``0.00`` (never ``−0.00``);
* percents: one decimal (``84.2%``); counts with thousands separators (``1,000``);
* p-values: two significant digits from 0.001 up (``0.31``, ``0.016``, ``0.0021``), ``< 0.001``
  below (a smaller p says nothing more to a reader and invites false precision);
* axis ticks in their shortest form with a sign (``−5``, ``+2.5``, ``0``);
* ``old → new`` with one arrow.

Plain text (terminal, Markdown) shows bidirectional control characters as ``<U+202E>``, as the
HTML escaper does, so what a reviewer reads is what the model sent, in order.
"""

from __future__ import annotations

import math
import re

# visible is re-exported: its one definition is in report/bidi.py
from pytest_parity.report.bidi import visible as visible

MINUS = "\u2212"
ARROW = "\u2192"
NA = "n/a"


def finite(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def points(x: object, signed: bool = True, digits: int = 2) -> str:
    """A 0-1 quantity as points (x100): ``−0.40``, ``+1.20``; ``n/a`` when not a number."""
    v = finite(x)
    if v is None:
        return NA
    v *= 100
    if abs(v) < 0.5 * 10**-digits:
        v = 0.0
    text = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    return text.replace("-", MINUS)


def percent(x: object, digits: int = 1) -> str:
    """A 0-1 share as a percent: ``84.2%``."""
    v = finite(x)
    return NA if v is None else f"{v * 100:.{digits}f}%"


def count(x: object) -> str:
    """A count with thousands separators: ``2,400``."""
    v = finite(x)
    return NA if v is None else f"{v:,.0f}"


def pvalue(p: object) -> str:
    """A p-value: ``0.31``, ``0.016``, ``< 0.001``."""
    v = finite(p)
    if v is None:
        return NA
    if v < 0.001:
        return "< 0.001"
    if v >= 0.995:
        return "1.0"
    return f"{v:.2g}"


def p_text(p: object) -> str:
    """``p = 0.31`` or ``p < 0.001``."""
    shown = pvalue(p)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def change(old: object, new: object) -> str:
    """``0 → 56``: a count before and after, with the one arrow every report uses."""
    return f"{count(old)} {ARROW} {count(new)}"


_ASCII_MINUS = re.compile(r"(?<![\w.\-])-(?=\d)")


def prose(text: object) -> str:
    """A reason sentence with the report's signs: ``0 -> 6`` as ``0 → 6``, ``-0.90`` with a true
    minus (a hyphen inside a word or an id, ``q-1``, stays)."""
    return _ASCII_MINUS.sub(MINUS, str(text).replace(" -> ", f" {ARROW} "))


def tick(v: float) -> str:
    """An axis tick in points: ``0``, ``+5``, ``−2.5`` (shortest form, true minus)."""
    if abs(v) < 1e-9:
        return "0"
    return f"{round(v, 6):+g}".replace("-", MINUS)


def signed_number(x: float, digits: int = 2) -> str:
    """A plain signed number with a true minus sign (terminal columns)."""
    return f"{x:+.{digits}f}".replace("-", MINUS)
