"""Why it drifted (input shift), the Alertmanager document, the Prometheus gauges and the drift
report page (issue 19 items 3-5): pure functions over plain data."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_parity.report.alerts import alert_payload, prometheus_gauges
from pytest_parity.report.html.monitor import render_monitor
from pytest_parity.stats.drift import DriftMonitor
from pytest_parity.stats.shift import features_of, input_shift, script_of

WORDS = {
    "en": ["please", "summarise", "the", "refund", "policy", "for", "my", "order", "today"],
    "ru": ["пожалуйста", "кратко", "опишите", "правила", "возврата", "заказа"],
    "ja": ["返金", "ポリシー", "を", "要約", "して", "ください"],
}


def request(rng: np.random.Generator, words: int, lang: str = "en", tools: bool = False,
            turns: int = 1) -> dict[str, Any]:  # fmt: skip
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful."}]
    for _ in range(turns):
        text = " ".join(rng.choice(WORDS[lang], words))
        msgs += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    body: dict[str, Any] = {"model": "m", "messages": msgs[:-1]}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "lookup"}}]
    return body


# -- input shift -------------------------------------------------------------------------------


def test_features_of_chat_and_completion_requests() -> None:
    body = {
        "model": "llama",
        "messages": [
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42"},
            {"role": "user", "content": [{"type": "text", "text": "Привет мир, как дела?"}]},
        ],
    }
    f = features_of(body)
    assert f["turns"] == 2 and f["tool_use"] is True and f["model"] == "llama"
    assert f["prompt_chars"] == len("Hello there\n\n42\nПривет мир, как дела?")
    assert f["script"] == "cyrillic"
    c = features_of({"prompt": "def f(x):\n    return x", "model": "m"})
    assert c["turns"] == 1 and c["tool_use"] is False and c["script"] == "latin"
    assert c["prompt_tokens"] >= 8
    assert features_of({"segment": "chat", "x": 1}) == {"segment": "chat", "x": 1}
    assert script_of("返金ポリシーを要約して") in ("han", "kana")
    assert script_of("1234 !!") == "none"


def test_a_changed_input_mix_is_named_with_its_effect() -> None:
    rng = np.random.default_rng(0)
    ref = [request(rng, int(rng.integers(5, 30))) for _ in range(400)]
    cur = [
        request(
            rng,
            int(rng.integers(20, 60)),
            "ru" if rng.random() < 0.4 else "en",
            tools=rng.random() < 0.5,
        )
        for _ in range(400)
    ]
    res = {r.feature: r for r in input_shift(ref, cur)}
    assert {"prompt_chars", "prompt_tokens", "turns", "tool_use", "script", "model"} <= set(res)
    chars = res["prompt_chars"]
    assert chars.test == "ks" and chars.shifted and chars.effect_size > 0.5
    assert chars.current_summary["median"] > chars.reference_summary["median"]
    assert res["tool_use"].shifted and res["tool_use"].test == "g-test"
    assert res["script"].shifted and 0.3 < res["script"].effect_size <= 1.0
    assert not res["turns"].shifted and not res["model"].shifted
    assert all(r.p_holm >= r.p_value for r in res.values())
    assert "larger" in chars.description and "\n" not in chars.description
    json.dumps([r.to_dict() for r in res.values()], allow_nan=False)


def mixed(rng: np.random.Generator) -> dict[str, Any]:
    lang = "ru" if rng.random() < 0.2 else "en"
    words, turns = int(rng.integers(3, 40)), int(rng.integers(1, 3))
    return request(rng, words, lang, tools=rng.random() < 0.3, turns=turns)


def test_same_inputs_rarely_called_shifted() -> None:
    """Two windows from one distribution, 60 seeds: a feature called shifted in at most 5% of
    the calls (Holm keeps the family-wise rate at alpha; the effect floor lowers it further)."""
    shifted = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        ref, cur = [[mixed(rng) for _ in range(150)] for _ in range(2)]
        shifted += any(r.shifted for r in input_shift(ref, cur))
    assert shifted / 60 <= 0.05, shifted


def test_a_tiny_but_significant_change_is_not_material() -> None:
    rng = np.random.default_rng(1)
    ref = [{"prompt_chars": int(x)} for x in rng.normal(1000, 50, 4000)]
    cur = [{"prompt_chars": int(x)} for x in rng.normal(1004, 50, 4000)]
    (r,) = input_shift(ref, cur)
    assert r.p_value < 0.05 and abs(r.effect_size) < 0.1 and not r.shifted


def test_input_shift_needs_both_windows() -> None:
    with pytest.raises(ValueError, match=r"both windows need requests \(reference 0, current 1\)"):
        input_shift([], [{"x": 1}])


# -- outcomes as drift-src's monitor builds them ------------------------------------------------

NASTY = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "\u202egnp.exe",
    "</td></tr></table><h1>x</h1>",
    "javascript:alert(1)",
    "&lt;already&gt; & \u2066isolate\u2069",
]


def outcome(segment: str, drift: bool, nasty: str = "") -> dict[str, Any]:
    rng = np.random.default_rng(5)
    mon = DriftMonitor(0.1)
    d = np.where(rng.random(300) < 0.5, 1.0, -1.0)
    if drift:
        d[150:] = np.where(rng.random(150) < 0.8, -1.0, 0.0)
    history = []
    status = None
    for i in range(0, 300, 25):
        status = mon.update(d[i : i + 25])
        history.append({"ts": 1_764_700_000.0 + i * 10, **status.to_dict()})
    assert status is not None
    examples = [
        {"pair_id": 17, "ts": 1_764_700_500.0, "link": "https://shadow.example/pairs/17",
         "score": -1.0, "prompt": "Q " + nasty, "baseline": "old " + nasty,
         "candidate": "new " + nasty},
        {"pair_id": 18, "ts": 1_764_700_600.0, "link": "javascript:alert(1)", "score": -1.0,
         "prompt": nasty, "baseline": nasty, "candidate": nasty},
    ]  # fmt: skip
    shift = [r.to_dict() for r in input_shift(
        [{"prompt_chars": 10 + i % 7, "script": "latin"} for i in range(80)],
        [{"prompt_chars": 40 + i % 9, "script": nasty or "latin"} for i in range(80)],
    )]  # fmt: skip
    return {
        "segment": segment,
        "new_pairs": 300,
        "judged": 300,
        "unjudged": 0,
        "status": status.to_dict(),
        "alert": status.alert,
        "was_alerting": False,
        "resolved": False,
        "examples": examples,
        "history": history,
        "first_ts": 1_764_700_000.0,
        "shift": shift,
    }


def task(segments: list[dict[str, Any]], name: str = "prod") -> dict[str, Any]:
    return {"task": name, "status": "ALERT", "tolerance": 0.1, "alert_at": 0.5, "bound": -0.05,
            "reasons": ["300 new pairs judged"], "segments": segments}  # fmt: skip


def test_alertmanager_document_firing_and_resolved() -> None:
    chat = outcome("chat", drift=True)
    code = outcome("code", drift=False)
    gone = {**outcome("old", drift=False), "resolved": True, "was_alerting": True}
    t = task([chat, code, gone])
    assert chat["alert"] and not code["alert"]
    doc = alert_payload(firing=[(t, chat)], resolved=[(t, gone)], contract="drift.yaml",
                        generator_url="https://ci.example/drift.html", now=1_764_800_000.0)  # fmt: skip
    json.dumps(doc, allow_nan=False)
    assert doc["version"] == "4" and doc["status"] == "firing"
    assert doc["groupLabels"] == {"alertname": "ParityDrift"}
    fire, res = doc["alerts"]
    assert fire["status"] == "firing" and res["status"] == "resolved"
    assert fire["labels"] == {"alertname": "ParityDrift", "task": "prod", "segment": "chat",
                              "severity": fire["labels"]["severity"], "contract": "drift.yaml"}  # fmt: skip
    assert fire["labels"]["severity"] in ("warning", "critical")
    for a in doc["alerts"]:
        assert all(isinstance(v, str) for v in [*a["labels"].values(), *a["annotations"].values()])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["startsAt"])
        assert a["generatorURL"] == "https://ci.example/drift.html"
        assert len(a["fingerprint"]) == 16
    assert fire["endsAt"] == "0001-01-01T00:00:00Z" and res["endsAt"] == "2025-12-03T22:13:20Z"
    ann = fire["annotations"]
    assert ann["estimate"].endswith(" pts") and ann["bound"].startswith("[")
    assert "https://shadow.example/pairs/17" in ann["examples"]
    assert ann["description"].startswith("Drift:")
    # the alert started at the first history point that showed it, not at this run
    first_alert = next(p for p in chat["history"] if p["alert"])
    assert fire["startsAt"] != res["startsAt"]
    assert fire["startsAt"].startswith("2025-12-0")
    assert first_alert["ts"] >= chat["first_ts"]
    only_resolved = alert_payload(resolved=[(t, gone)], now=1.0)
    assert only_resolved["status"] == "resolved"
    assert only_resolved["commonLabels"]["segment"] == "old"


def test_prometheus_gauges_parse_and_carry_each_segments_bound() -> None:
    chat = outcome('ch"at\\x\n', drift=True)
    code = outcome("code", drift=False)
    empty = {**outcome("new", drift=False), "status": None}
    text = prometheus_gauges([task([chat, code, empty])])
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"parity_drift_upper", "parity_drift_lower", "parity_drift_estimate",
            "parity_drift_pairs", "parity_drift_alert"} <= set(fams)  # fmt: skip
    upper = {s.labels["segment"]: s.value for s in fams["parity_drift_upper"].samples}
    assert set(upper) == {'ch"at\\x\n', "code"}, "a segment without a status has no gauge"
    assert upper["code"] == pytest.approx(code["status"]["upper"])
    alert = {s.labels["segment"]: s.value for s in fams["parity_drift_alert"].samples}
    assert alert == {'ch"at\\x\n': 1.0, "code": 0.0}
    assert all(f.type == "gauge" for f in fams.values())


# -- the drift report page ----------------------------------------------------------------------


class Strict(HTMLParser):
    """Collects tags, attributes and text; fails on a script or an event handler."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag not in ("script", "iframe", "object", "embed", "img"), tag
        for k, v in attrs:
            assert not k.startswith("on"), (tag, k)
            if k == "href":
                assert v is not None and v.startswith("https://"), v
                self.hrefs.append(v)
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_drift_report_escapes_every_payload_and_parses() -> None:
    segments = [outcome(f"seg {n}", drift=i % 2 == 0, nasty=n) for i, n in enumerate(NASTY)]
    page = render_monitor([task(segments, name="<b>prod</b>")], title="Drift <i>report</i>")
    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page
    assert "<script" not in page and "<img" not in page and "<h1>x" not in page
    assert "\u202e" not in page and "\u2066" not in page and "&lt;U+202E&gt;" in page
    p = Strict()
    p.feed(page)
    p.close()
    text = "".join(p.text)
    assert "<script>alert(1)</script>" in text, "shown as text"
    assert "<b>prod</b>" in text and "Drift <i>report</i>" in text
    assert p.hrefs and all(h == "https://shadow.example/pairs/17" for h in p.hrefs)
    assert p.tags.count("svg") >= 2 * len(NASTY), "a sequence and a detector plot per segment"
    assert "alert line" in text and "Drift alert" in text
    assert "Did the inputs change?" in text and "The inputs changed" in text


def test_drift_report_without_history_or_status() -> None:
    seg = {"segment": "new", "status": None, "alert": False, "resolved": False, "history": [],
           "examples": [], "shift": []}  # fmt: skip
    page = render_monitor([task([seg])])
    p = Strict()
    p.feed(page)
    assert "No points of the sequence yet." in page and "no judged pairs yet" in page
    assert "No drift alert is firing." in page


# -- the segment mix -----------------------------------------------------------------------------


def mix_task(names: list[str], shifted: bool = True) -> dict[str, Any]:
    """A task outcome whose segments are ``names`` and whose mix moved the first one 10% -> 40%."""
    from pytest_parity.stats.shift import mix_alone, segment_mix

    rest = max(1, len(names) - 1)
    ref = {names[0]: 100} | {n: 900 // rest for n in names[1:]}
    cur = {names[0]: 400 if shifted else 100} | {n: (600 if shifted else 900) // rest
                                                 for n in names[1:]}  # fmt: skip
    mix = segment_mix(ref, cur)
    assert mix is not None
    segs = [outcome(n, drift=i == 0) for i, n in enumerate(names)]
    segs[0]["shift"] = [r.to_dict() for r in input_shift(
        [{"prompt_chars": 10 + i % 7} for i in range(80)],
        [{"prompt_chars": 10 + i % 7} for i in range(80)], mix=mix)]  # fmt: skip
    return task(segs) | {"mix": mix_alone(mix).to_dict()}


def test_the_mix_is_named_in_the_alert_document_and_escaped_in_the_report() -> None:
    nasty = "<script>alert(1)</script>\u202eent"
    t = mix_task([nasty, "chat", "</td></tr></table><h1>x</h1>"])
    assert t["mix"]["shifted"] and t["mix"]["changes"][0]["segment"] == nasty
    doc = alert_payload(firing=[(t, t["segments"][0])], now=1_764_800_000.0)
    ann = doc["alerts"][0]["annotations"]
    assert ann["inputs"].startswith("inputs unchanged (1 feature and the segment mix tested")
    assert f"; segment mix changed: {nasty} 10% -> 40%" in ann["inputs"]
    assert ann["segment_mix"].startswith(f"segment mix changed: {nasty} 10% -> 40%")
    json.dumps(doc, allow_nan=False)
    page = render_monitor([t])
    assert "<script" not in page and "\u202e" not in page and "<h1>x" not in page
    p = Strict()
    p.feed(page)
    p.close()
    text = "".join(p.text)
    assert "Did the segment mix change?" in text
    assert "Segment mix changed: <script>alert(1)</script><U+202E>ent 10% -> 40%" in text
    assert "10.0%" in text and "40.0%" in text and "+30.0 pts" in text


def test_an_unchanged_mix_adds_no_note() -> None:
    t = mix_task(["enterprise", "chat"], shifted=False)
    assert not t["mix"]["shifted"]
    doc = alert_payload(firing=[(t, t["segments"][0])], now=1_764_800_000.0)
    ann = doc["alerts"][0]["annotations"]
    assert "segment mix changed" not in ann["inputs"] and "segment_mix" not in ann
    page = render_monitor([t])
    assert "Segment mix changed" not in page
    assert "No material change of the segment mix against the reference window" in page


def test_printable_makes_bidi_and_control_characters_visible() -> None:
    from pytest_parity.report.bidi import printable

    assert printable("ent\u202e\x1b[31mred\r") == "ent<U+202E><U+001B>[31mred<U+000D>"
    assert printable("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
