"""Records of a long task share their short repeated strings (memory per item, issue 22)."""

from __future__ import annotations

import json

from pytest_parity.runner.pipeline import SHARED_MAX_CHARS, _shared


def test_short_strings_parsed_apart_become_one_object_and_long_ones_are_left_alone() -> None:
    a, b = json.loads('[" 42", " 42"]')  # two parses, as two answers are
    assert a is not b
    assert _shared(a) is _shared(b) == " 42"
    long_a, long_b = json.loads(json.dumps(["x" * (SHARED_MAX_CHARS + 1)] * 2))
    assert _shared(long_a) is long_a and _shared(long_a) is not _shared(long_b)
    assert _shared(None) is None and _shared(7) == 7
