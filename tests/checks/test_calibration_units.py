"""Calibration and tone statistics against hand-computed values and reference implementations;
confidence from logprobs as real servers return them; logprobs through the cache and recordings.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from servers import FakeServer, Reply

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.http import Request, Response, open_endpoint
from pytest_parity.endpoints.kinds import KINDS, parse_reply
from pytest_parity.endpoints.recording import Recorder
from pytest_parity.scoring.confidence import (
    NO_LOGPROBS,
    NO_TOP_LOGPROBS,
    confidence,
    option_probability,
    verbalized,
)
from pytest_parity.sources.item import Item
from pytest_parity.stats import calibration as cal

# --- statistics ------------------------------------------------------------------------------


def test_brier_by_hand() -> None:
    got = cal.brier_items([0.9, 0.6, 0.2], [1, 0, 0])
    assert got.tolist() == pytest.approx([0.01, 0.36, 0.04])


def test_aurc_by_hand() -> None:
    # risks at coverage 1..4: 0/1, 1/2, 1/3, 2/4
    assert cal.aurc([0.9, 0.8, 0.7, 0.6], [0, 1, 0, 1]) == pytest.approx(
        (0 + 0.5 + 1 / 3 + 0.5) / 4
    )
    # a perfect ranking puts the errors last; the reversed one first
    assert cal.aurc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) < cal.aurc(
        [0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]
    )


def test_aurc_averages_ties_over_every_order() -> None:
    c, e = [0.9, 0.9, 0.9, 0.1, 0.1], [1, 0, 0, 1, 0]
    # brute force: every order the ties allow, equally likely
    risks = []
    for top in set(itertools.permutations([1, 0, 0])):
        for bottom in set(itertools.permutations([1, 0])):
            seq = np.array([*top, *bottom], dtype=float)
            risks.append(float(np.mean(np.cumsum(seq) / np.arange(1, 6))))
    assert cal.aurc(c, e) == pytest.approx(float(np.mean(risks)))
    # a constant confidence carries no ranking: AURC is the error rate
    assert cal.aurc([0.5] * 4, [0, 1, 0, 1]) == pytest.approx(0.5)


def test_ece_by_hand_and_its_noise_floor() -> None:
    # bins of width 1/15: 0.05 alone (acc 0), two at 0.95 (acc 1/2)
    assert cal.ece([0.05, 0.95, 0.95], [0, 1, 0]) == pytest.approx((0.05 + 2 * 0.45) / 3)
    # a perfectly calibrated system at n = 1,000 shows ECE ~ .037 by chance (STATISTICS.md 7)
    rng = np.random.default_rng(7)
    c = rng.uniform(0, 1, (200, 1000))
    y = (rng.uniform(0, 1, c.shape) < c).astype(float)
    mean_ece = float(np.mean([cal.ece(c[i], y[i]) for i in range(200)]))
    assert mean_ece == pytest.approx(cal.ece_noise_floor(1000), rel=0.15)
    assert mean_ece == pytest.approx(0.037, rel=0.15)


def test_reliability_bins() -> None:
    rows = cal.reliability([0.05, 0.95, 0.95, 1.0], [0, 1, 0, 1])
    assert [r["n"] for r in rows] == [1, 3]
    assert rows[1]["accuracy"] == pytest.approx(2 / 3)


def test_tost_matches_statsmodels() -> None:
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.08, -0.2, 0.5):
        old = rng.normal(3, 0.3, 40)
        new = old + shift + rng.normal(0, 0.2, 40)
        margin = math.log(1.15)
        got = cal.tost_paired(new - old, margin, alpha=0.05)
        p, _, _ = ttost_paired(new, old, -margin, margin)
        assert got.p_equivalence == pytest.approx(p, rel=1e-9)
        assert (got.status == "PASS") == (p < 0.05)


def test_tost_verdicts() -> None:
    d = np.random.default_rng(1).normal(0, 0.05, 60)
    assert cal.tost_paired(d, math.log(1.15)).status == "PASS"
    assert cal.tost_paired(d - 0.36, math.log(1.15)).status == "FAIL"  # 30% shorter
    assert cal.tost_paired(d[:4] * 20, math.log(1.15)).status == "INCONCLUSIVE"
    assert cal.tost_paired(np.zeros(10), 0.1).status == "PASS"


def test_aurc_delta_is_zero_for_equal_stacks_and_catches_lost_ranking() -> None:
    rng = np.random.default_rng(5)
    y = (rng.uniform(size=300) < 0.7).astype(float)
    c = np.where(y == 1, rng.uniform(0.7, 1, 300), rng.uniform(0.3, 0.7, 300))
    same = cal.aurc_delta(c, 1 - y, c, 1 - y, rng=rng, n_boot=200)
    assert same.delta == 0 and same.low == 0 and same.high == 0
    flat = cal.aurc_delta(c, 1 - y, np.full(300, 0.9), 1 - y, rng=rng, n_boot=400)
    assert flat.low > 0.1 and flat.new == pytest.approx(1 - y.mean())


# --- confidence ------------------------------------------------------------------------------

# A llama.cpp chat reply (llama-cpp-python 0.3.36, SmolLM2), cut to its first two tokens.
LLAMA_CHAT = {
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "A."},
            "finish_reason": "length",
            "logprobs": {
                "content": [
                    {
                        "token": "A",
                        "logprob": -1.1126,
                        "bytes": None,
                        "top_logprobs": [
                            {"token": "A", "logprob": -1.1126, "bytes": None},
                            {"token": "C", "logprob": -2.0600, "bytes": None},
                            {"token": "The", "logprob": -2.1164, "bytes": None},
                            {"token": "D", "logprob": -2.1722, "bytes": None},
                            {"token": "B", "logprob": -2.3803, "bytes": None},
                        ],
                    },
                    {"token": ".", "logprob": -0.1198, "bytes": None, "top_logprobs": []},
                ]
            },
        }
    ],
    "model": "m.gguf",
}


def _response(parsed: dict[str, Any]) -> Response:
    return Response(
        text=parsed["text"],
        finish_reason=parsed["finish_reason"],
        logprobs=None if parsed["logprobs"] is None else tuple(parsed["logprobs"]),
        tokens=None if parsed["tokens"] is None else tuple(parsed["tokens"]),
        top_logprobs=None if parsed["top_logprobs"] is None else tuple(parsed["top_logprobs"]),
    )


def test_option_probability_from_a_llama_cpp_chat_reply() -> None:
    r = _response(parse_reply(KINDS["llama-cpp"], "chat", LLAMA_CHAT))
    assert r.tokens == ("A", ".") and r.top_logprobs is not None
    p, problem = option_probability(r, "ABCD")
    masses = [math.exp(x) for x in (-1.1126, -2.0600, -2.1722, -2.3803)]
    assert problem is None and p == pytest.approx(masses[0] / sum(masses))
    # two options: the same token, renormalised over A and B only
    p2, _ = option_probability(r, "AB")
    assert p2 == pytest.approx(math.exp(-1.1126) / (math.exp(-1.1126) + math.exp(-2.3803)))


def test_completions_top_logprobs_and_space_variants_are_summed() -> None:
    data = {
        "choices": [
            {
                "text": " B",
                "finish_reason": "stop",
                "logprobs": {
                    "tokens": [" B"],
                    "token_logprobs": [math.log(0.5)],
                    "top_logprobs": [
                        {" B": math.log(0.5), "B": math.log(0.1), " A": math.log(0.2)}
                    ],
                },
            }
        ]
    }
    r = _response(parse_reply(KINDS["vllm"], "completions", data))
    p, _ = option_probability(r, "AB")
    assert p == pytest.approx(0.6 / 0.8)


def test_missing_logprobs_are_named_problems() -> None:
    item = Item("1", "q", None, "A")
    assert confidence(Response("A", "stop"), item, {}, multiple_choice=True) == (None, NO_LOGPROBS)
    no_top = Response("A", "stop", logprobs=(-0.1,), tokens=("A",))
    assert confidence(no_top, item, {}, multiple_choice=True) == (None, NO_TOP_LOGPROBS)
    span = confidence(no_top, item, {}, multiple_choice=False)
    assert span[0] == pytest.approx(math.exp(-0.1))


def test_span_confidence_mean_and_total() -> None:
    r = Response("a b", "stop", logprobs=(-0.2, -0.4), tokens=("a", " b"))
    item = Item("1", "q", None, None)
    assert confidence(r, item, {}, multiple_choice=False)[0] == pytest.approx(math.exp(-0.3))
    total = confidence(r, item, {"span": "total"}, multiple_choice=False)[0]
    assert total == pytest.approx(math.exp(-0.6))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("B. Confidence: 0.8", 0.8),
        ("The answer is C (confidence: 75%)", 0.75),
        ("Answer A, confidence 90", 0.9),
        ("I am confident it is A", None),
        ("confidence: 1.7", None),
    ],
)
def test_verbalized_confidence(text: str, want: float | None) -> None:
    got = verbalized(text)
    assert got == (None if want is None else pytest.approx(want))


def hook(response: Response, item: Item) -> float:
    return 0.25 if item.id == "x" else 0.5


def test_custom_hook() -> None:
    item = Item("x", "q", None, None)
    got = confidence(
        Response("a", "stop"), item, {"confidence": f"{__name__}:hook"}, multiple_choice=True
    )
    assert got == (0.25, None)


# --- logprobs through the cache and recordings -----------------------------------------------


def _spec(base_url: str, **kw: Any) -> EndpointSpec:
    base: dict[str, Any] = {
        "role": "baseline",
        "kind": "vllm",
        "base_url": base_url,
        "model": "test-model",
        "params": MappingProxyType(
            {"temperature": 0.0, "max_tokens": 4, "logprobs": True, "top_logprobs": 2}
        ),
        "max_retries": 0,
    }
    base.update(kw)
    return EndpointSpec(**base)


TOKENS = [
    {"token": "B", "logprob": -0.2, "top_logprobs": [{"token": "B", "logprob": -0.2},
                                                     {"token": "A", "logprob": -1.8}]},
]  # fmt: skip


def _ask(
    spec: EndpointSpec, cache: ResponseCache | None = None, rec: Recorder | None = None
) -> Response:
    async def go() -> Response:
        ep = open_endpoint(spec, cache=cache, recorder=rec)
        try:
            return await ep.complete(Request("1", messages=({"role": "user", "content": "q"},)))
        finally:
            await ep.aclose()

    return asyncio.run(go())


def test_top_logprobs_survive_the_cache_and_a_recording(tmp_path: Path) -> None:
    with FakeServer(answer=lambda b: Reply("B", logprobs=TOKENS)) as srv:
        with ResponseCache(tmp_path / "cache") as cache:
            first = _ask(_spec(srv.base_url), cache)
            again = _ask(_spec(srv.base_url), cache)
        rec = Recorder(tmp_path / "rec.jsonl", contract_digest="ab" * 32, truncate=True)
        try:
            _ask(_spec(srv.base_url), rec=rec)
        finally:
            rec.close()
        sent = len(srv.received)
    assert sent == 2 and again.cached
    want = ({"B": -0.2, "A": -1.8},)
    assert first.top_logprobs == again.top_logprobs == want
    assert again.tokens == ("B",) and again.logprobs == (-0.2,)
    replay = EndpointSpec(
        role="baseline",
        kind="replay",
        base_url="",
        model="test-model",
        recording=tmp_path / "rec.jsonl",
    )
    replayed = _ask(replay)
    assert replayed.ok and replayed.top_logprobs == want and replayed.tokens == ("B",)
    assert option_probability(replayed, "AB")[0] == pytest.approx(
        math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.8))
    )


def test_report_sections_escape_everything() -> None:
    from pytest_parity.report.html.drift import calibration_html, tone_html

    evil = "<script>alert(1)</script>"
    cal_html = calibration_html(
        {
            "numbers": {
                "confidence_method": evil,
                "n_paired": 3,
                "brier_baseline": 0.1,
                "brier_candidate": 0.2,
                "brier_delta": 0.1,
                "brier_ci_low": 0.05,
                "brier_ci_high": 0.15,
                "brier_tolerance": 0.01,
                "reliability_baseline": [{"n": 3, "confidence": 0.7, "accuracy": 0.6}],
                "reliability_candidate": [{"n": 3, "confidence": 0.9, "accuracy": 0.6}],
            }
        }
    )
    tone = tone_html(
        {
            "numbers": {
                "length_unit": evil,
                "length_ratio": 0.7,
                "markers": {evil: {"baseline": 0.5, "candidate": 0.1, "status": evil}},
                "length_hist_edges": [0, 1, 2],
                "length_hist_baseline": [1, 2],
                "length_hist_candidate": [2, 1],
            }
        }
    )
    for html in (cal_html, tone):
        assert "<script>" not in html and "&lt;script&gt;" in html
    assert cal_html.count("<circle") == 2 and "Reliability diagram" in cal_html
    assert tone.count("<rect") >= 4 + 2  # four bars and the legend
