"""The judge checked against production's own signals (issue 17 item 3): the agreement of the
scorer's preference with thumbs up / down, overall and per segment, on data whose answer is known."""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer
from traffic_data import write_gateway

from pytest_parity import load_contract
from pytest_parity.runner import Runner
from pytest_parity.sources.traffic.signals import agreements, polarity, signal_lines


def rec(segment: str, thumbs: Any, old: float | None, new: float | None) -> dict[str, Any]:
    side = {"score": old}
    return {
        "metadata": {"segment": segment, "signals": {"thumbs": thumbs}},
        "baseline": side,
        "candidate": {"score": new},
    }


KNOWN = [
    rec("a", "up", 1.0, 0.0),  # prefers production, rated up: agrees
    rec("a", "up", 1.0, 1.0),  # no preference
    rec("a", "down", 0.0, 1.0),  # prefers the other answer, rated down: agrees
    rec("a", "thumbs_down", 1.0, 0.0),  # prefers production, rated down: disagrees
    rec("b", True, 0.0, 1.0),  # prefers the other answer, rated up: disagrees
    rec("b", -1, 0.5, 1.0),  # rated down, the other preferred: agrees
    rec("b", "meh", 1.0, 0.0),  # no reading of the signal: not counted
    rec("b", "up", 1.0, None),  # the candidate not scored: not counted
]


def test_agreement_per_segment_on_known_data() -> None:
    got = agreements(KNOWN)["thumbs"]
    assert set(got) == {None, "a", "b"}
    overall, a, b = got[None], got["a"], got["b"]
    assert (overall.n, overall.up, overall.down, overall.decided, overall.agree) == (6, 3, 3, 5, 3)
    assert overall.rate == pytest.approx(0.6)
    assert overall.old_up == pytest.approx(2 / 3) and overall.old_down == pytest.approx(0.5)
    assert (a.decided, a.agree, a.rate) == (3, 2, pytest.approx(2 / 3))
    assert (b.decided, b.agree, b.rate) == (2, 1, 0.5)
    assert signal_lines(KNOWN) == [
        "signal thumbs: 6 items rated (3 up, 3 down); old answer scored 0.67 where rated up;"
        " 0.50 where rated down; the scorer's preference agrees with the signal on 60% of 5"
        " items with a preference",
        "signal thumbs, segment a: 4 items rated (2 up, 2 down); old answer scored 1.00 where"
        " rated up; 0.50 where rated down; the scorer's preference agrees with the signal on"
        " 67% of 3 items with a preference",
        "signal thumbs, segment b: 2 items rated (1 up, 1 down); old answer scored 0.00 where"
        " rated up; 0.50 where rated down; the scorer's preference agrees with the signal on"
        " 50% of 2 items with a preference",
    ]


def test_no_preference_and_one_segment() -> None:
    same = [rec("a", "up", 1.0, 1.0), rec("a", "down", 0.0, 0.0)]
    got = agreements(same)["thumbs"]
    assert set(got) == {None} and got[None].rate is None
    assert signal_lines(same)[0].endswith("no item with a preference between the stacks")
    assert [polarity(v) for v in ("Up", " clicked ", 0, 1, 2, None, "x")] == [
        1, 1, -1, 1, None, None, None,
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# end to end: captured production answers (all right), a candidate wrong on ~20% of requests

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")
PAIRED = """
import re
from pytest_parity.scoring.builtin import Score
from pytest_parity.scoring.context import paired

Q = re.compile(r"What is (\\d+) \\+ (\\d+)\\?")


@paired
async def sums(ctx):
    text = next(m["content"] for m in reversed(ctx.item.messages) if m["role"] == "user")
    a, b = map(int, Q.search(text).groups())
    want = f"is {a + b}."
    return (Score(float(want in ctx.baseline.text)), Score(float(want in ctx.candidate.text)))
"""


def user_text(messages: list[dict[str, Any]]) -> str:
    return str(next(m for m in reversed(messages) if m["role"] == "user")["content"])


def wrong(text: str) -> bool:
    return zlib.crc32(text.encode()) % 100 < 20


def candidate(body: dict[str, Any]) -> str:
    text = user_text(body["messages"])
    m = QUESTION.search(text)
    assert m is not None
    return (
        "The answer is 1000000." if wrong(text) else f"The answer is {sum(map(int, m.groups()))}."
    )


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[None]:
    (tmp_path / "sig_stub.py").write_text(PAIRED)
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("sig_stub", None)


def test_agreement_against_captured_thumbs_is_what_the_data_says(
    tmp_path: Path, stub: None, fake_servers: Callable[..., FakeServer]
) -> None:
    write_gateway(tmp_path / "traffic.jsonl", 400)
    new = fake_servers(answer=candidate)
    path = tmp_path / "c.yaml"
    path.write_text(
        "baseline: {kind: captured}\n"
        f"candidate: {{kind: openai, base_url: '{new.base_url}', model: m}}\n"
        "tasks:\n  - {name: prod, source: traffic, path: traffic.jsonl, scorer: 'sig_stub:sums',"
        " traffic: {format: openai, segment: metadata.route, signals: {thumbs: feedback.thumbs},"
        " count: 300, seed: 1}}\n"
    )
    c = load_contract(path)
    run = Runner(c).run(c.tasks[0])
    assert len(run.records) == 300
    # Expected, from the data alone: production is always right, so the judge prefers a side
    # exactly where the candidate is wrong (its preference: production); it agrees with the
    # thumbs where that answer was rated up.
    want: dict[str | None, tuple[int, int]] = {}
    for r in run.records:
        meta = r["metadata"] or {}
        up = meta["signals"]["thumbs"] == "up"
        if wrong(r["prompt"].rsplit("user: ", 1)[-1]):
            for key in (None, meta["segment"]):
                d, a = want.get(key, (0, 0))
                want[key] = (d + 1, a + up)
    got = agreements(run.records)["thumbs"]
    assert set(got) == {None, "support", "search", "billing"}
    for key, (decided, agree) in want.items():
        assert (got[key].decided, got[key].agree) == (decided, agree), key
    assert 20 < want[None][0] < 100  # the data has preferences to agree with
    rate = got[None].rate
    assert rate is not None
    assert f"the scorer's preference agrees with the signal on {rate:.0%}" in " ".join(run.notes)
    assert sum(n.startswith("signal thumbs, segment ") for n in run.notes) == 3
