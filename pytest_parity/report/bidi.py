"""Bidirectional control characters made visible, in every report a person reads.

An U+202E (right-to-left override) in a model's answer reverses the text after it on screen, so
a reviewer would read something the model did not send in that order. HTML, Markdown and the
terminal show each such control as ``<U+202E>`` instead; the JSON files keep the exact text.
"""

from __future__ import annotations

import re

# LRE RLE PDF LRO RLO, LRI RLI FSI PDI, LRM RLM, ALM
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every bidi control replaced by ``<U+hhhh>``."""
    return BIDI_CONTROLS.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` for a terminal: bidi controls and the other control characters (ESC, CR, ...;
    not tab or newline) shown as ``<U+hhhh>``, so a segment name from a request header cannot
    reorder or recolour the line."""
    return _CONTROLS.sub(lambda m: f"<U+{ord(m.group()):04X}>", visible(text))
