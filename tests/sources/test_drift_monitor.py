"""``--parity-monitor`` over a simulated shadow stream: real judge and webhook servers on
127.0.0.1, pairs written through the store API, two pytest runs sharing the store's state.

The stream: two segments of one pair every 10 s. ``code`` is an A/A stream (the new stack wins
and loses as often: mean judged score 0). ``chat`` is the same until pair DRIFT_AT, then the new
stack loses 80% of its pairs (a -0.8 drift, beyond the 0.1 tolerance): the alert must fire after
pair DRIFT_AT of ``chat``, never before, and never on ``code``.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from drift_data import pair, write_pairs
from judge_script import ScriptedJudge
from servers import FakeServer, closed_port

from pytest_parity.store import open_store

N = 100  # pairs per segment
DRIFT_AT = 50  # the chat segment's first drifted pair (its index within the segment)
FIRST_RUN = 60  # pairs per segment stored before the first run
LINK = "https://shadow.example/pairs/{pair_id}"


class Receiver:
    """A webhook receiver: records every POSTed JSON document; answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[Any] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.posts.append(json.loads(body))
                outer.headers.append(dict(self.headers))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def chat_new_q(k: int) -> int:
    if k >= DRIFT_AT:
        return 2 if k % 5 < 4 else 3  # 80% losses after the drift
    return 2 if k % 10 == 0 else 4 if k % 10 == 5 else 3  # as many losses as wins


def aa_new_q(k: int) -> int:
    return 2 if k % 10 == 0 else 4 if k % 10 == 5 else 3


def stream(start: int, stop: int, t0: float) -> list[dict[str, Any]]:
    """Pairs k = start..stop-1 of both segments, interleaved in time (ids follow time)."""
    out = []
    for k in range(start, stop):
        out.append(pair(2 * k, t0 + 20 * k, new_q=chat_new_q(k), segment="chat"))
        out.append(pair(2 * k + 1, t0 + 20 * k + 10, new_q=aa_new_q(k), segment="code"))
    return out


def contract(path: Path, judge_url: str, hook: str, *, extra: str = "") -> Path:
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    path.write_text(
        f"""
baseline:  {{kind: openai, base_url: "{dead}", model: old-m}}
candidate: {{kind: vllm, base_url: "{dead}", model: new-m}}
judge: {{kind: openai, base_url: "{judge_url}", model: judge-m, max_concurrency: 8}}
defaults: {{tolerance: 0.1}}
tasks:
  - {{name: drift, source: shadow, shadow: {{store: shadow.sqlite}}, scorer: {{name: judge-pairwise, recheck: 0}}}}
monitor:
  links: "{LINK}"
  webhook: {{url: "{hook}", headers_env: {{Authorization: HOOK_TOKEN}}, retries: 1}}{extra}
"""
    )
    return path


def monitor(pytester: pytest.Pytester, path: Path, *args: str) -> Any:
    return pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-monitor",
        "-p",
        "no:hypothesispytest",  # its terminal summary costs a second a run
        f"--parity-monitor-metrics={pytester.path / 'drift.prom'}",
        f"--parity-monitor-report={pytester.path / 'drift.html'}",
        *args,
    )


def states(db: Path) -> dict[str, dict[str, Any]]:
    with open_store(str(db)) as st:
        return st.monitor_load("drift").states


def test_injected_drift_is_detected_after_it_across_a_restart_and_the_webhook_hears_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "Bearer s3cret-token")
    db = pytester.path / "shadow.sqlite"
    t0 = time.time() - 4 * 3600  # every pair older than the settle time
    write_pairs(str(db), stream(0, FIRST_RUN, t0))
    judge = ScriptedJudge()
    with FakeServer(answer=judge) as j, Receiver() as hook:
        path = contract(pytester.path / "drift.yaml", j.base_url, hook.url)
        # run 1: 10 drifted chat pairs are not yet enough to tell: no alert, nothing sent
        first = monitor(pytester, path)
        assert first.ret == 0, first.stdout.str()
        assert hook.posts == []
        s1 = states(db)
        assert s1["chat"]["last"]["n"] == FIRST_RUN and not s1["chat"]["alerting"]
        judged_once = len(judge.bodies)
        assert judged_once == 2 * 2 * FIRST_RUN  # both orders of every pair
        # run 2 (a scheduled run later): only the new pairs are judged, the sequence continues
        write_pairs(str(db), stream(FIRST_RUN, N, t0))
        second = monitor(pytester, path)
        assert len(judge.bodies) - judged_once == 2 * 2 * (N - FIRST_RUN), "no pair judged twice"
        out = second.stdout.str()
        assert second.ret == 10, out
        s2 = states(db)
        chat, code = s2["chat"]["last"], s2["code"]["last"]
        assert chat["n"] == N and code["n"] == N
        assert chat["alert"] and not code["alert"]
        assert DRIFT_AT < chat["alarmed_at"] <= N, chat
        delay = chat["alarmed_at"] - DRIFT_AT
        print(f"detection delay: {delay} pairs after the drift ({chat['reason']})")
        assert "drift alert on segment(s) chat" in out
        # the webhook: one document, the chat segment firing, with its bound and example pairs
        assert len(hook.posts) == 1
        doc = json.dumps(hook.posts[0])
        assert "chat" in doc and "firing" in doc
        assert "shadow.example/pairs/" in doc
        assert hook.headers[0]["Authorization"] == "Bearer s3cret-token"
        assert "s3cret" not in out and "token=abc" not in out
        assert "webhook http://127.0.0.1" in out and "delivered" in out
        # gauges and the report
        prom = (pytester.path / "drift.prom").read_text()
        assert 'segment="chat"' in prom and 'segment="code"' in prom
        assert (pytester.path / "drift.html").is_file()
        # run 3, nothing new: the alert keeps firing, nothing judged
        before = len(judge.bodies)
        third = monitor(pytester, path)
        assert third.ret == 10 and len(judge.bodies) == before
        # a reset starts over from now: nothing judged again, the firing alert is resolved
        hook.posts.clear()
        fourth = monitor(pytester, path, "--parity-monitor-reset")
        assert fourth.ret == 0, fourth.stdout.str()
        assert len(judge.bodies) == before
        assert len(hook.posts) == 1 and "resolved" in json.dumps(hook.posts[0])
        assert "firing" not in json.dumps(hook.posts[0]["alerts"])
        assert "chat" in json.dumps(hook.posts[0])
        after = states(db)
        assert set(after) == {"chat"}  # a sequence starts again with its next pair
        assert all(s["last"] is None and not s["alerting"] for s in after.values())
        with open_store(str(db)) as st:
            assert st.monitor_load("drift").checkpoint == st.last_key()
    # one run over the whole stream from the start reaches the same state: the restart lost
    # nothing and counted nothing twice
    other = pytester.path / "one"
    other.mkdir()
    shutil.copy(db, other / "shadow.sqlite")
    with open_store(str(other / "shadow.sqlite")) as st:
        st.monitor_reset("drift")
    with FakeServer(answer=ScriptedJudge()) as j, Receiver() as hook:
        path = contract(other / "drift.yaml", j.base_url, hook.url)
        once = monitor(pytester, path)
        assert once.ret == 10
    assert states(other / "shadow.sqlite")["chat"]["last"] == chat


def test_a_judge_that_is_down_is_an_error_never_no_drift(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    write_pairs(str(db), stream(0, 20, time.time() - 3600))
    with Receiver() as hook:
        path = contract(
            pytester.path / "drift.yaml", f"http://127.0.0.1:{closed_port()}/v1", hook.url
        )
        result = monitor(pytester, path)
    out = result.stdout.str()
    assert result.ret == 1, out
    assert "1 error" in out and "drift: ERROR" in out
    assert "judge" in out and "nothing was counted" in out
    assert states(db) == {}, "nothing saved: the next run judges these pairs"
    with open_store(str(db)) as st:
        assert st.monitor_load("drift").checkpoint is None


def test_an_undeliverable_alert_is_reported_not_silent(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    write_pairs(
        str(db),
        [pair(i, time.time() - 3600 + i, new_q=2, segment="chat") for i in range(40)],
    )
    with FakeServer(answer=ScriptedJudge()) as j, Receiver(status=503) as hook:
        path = contract(pytester.path / "drift.yaml", j.base_url, hook.url)
        result = monitor(pytester, path)
    out = result.stdout.str()
    assert result.ret == 10, out
    assert len(hook.posts) == 2, "one retry"
    assert "NOT delivered after 2 attempt(s): HTTP 503" in out


def test_bad_monitor_blocks_are_one_line_errors(pytester: pytest.Pytester) -> None:
    good = contract(pytester.path / "drift.yaml", "http://127.0.0.1:1/v1", "http://h/x")
    text = good.read_text()
    cases = {
        'webhook: {url: "http://u:p@h/x"}': "monitor.webhook.url: the URL holds a user or password",
        "tasks: [nope]": "monitor.tasks[0]: 'nope' is not a task with source: shadow",
        "alert_at: 2": "monitor.alert_at: expected a number in (0, 1]",
        'links: "https://x/{id}"': "monitor.links: does not contain {pair_id}",
        "settle: soon": "monitor.settle: not a duration: 'soon'",
    }
    for bad, message in cases.items():
        lines = text.split("\n")
        head = lines[: lines.index("monitor:") + 1]
        good.write_text("\n".join([*head, "  " + bad]) + "\n")
        result = pytester.runpytest(f"--parity-contract={good}", "--parity-monitor")
        assert result.ret == 4, bad
        assert message in result.stderr.str(), (bad, result.stderr.str())


def test_a_backlog_is_worked_off_over_runs_and_last_bounds_the_first_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    now = time.time()
    old = [pair(i, now - 3 * 86400 + i, segment="chat") for i in range(5)]  # before last: 1d
    write_pairs(str(db), old + [pair(10 + i, now - 3600 + i, segment="chat") for i in range(30)])
    with FakeServer(answer=ScriptedJudge()) as j, Receiver() as hook:
        path = contract(
            pytester.path / "drift.yaml", j.base_url, hook.url, extra="\n  max_pairs: 20"
        )
        text = path.read_text().replace(
            "{store: shadow.sqlite}", "{store: shadow.sqlite, window: {last: 1d}}"
        )
        path.write_text(text)
        seen = []
        outs = []
        for _ in range(2):
            result = monitor(pytester, path)
            assert result.ret == 0
            outs.append(result.stdout.str())
            seen.append(states(db)["chat"]["last"]["n"])
        # the 5 pairs older than a day are never judged; 20 a run until the 30 are done
        assert seen == [20, 30]
        assert "20 new pairs judged" in outs[0] and "; 10 more wait for the next run" in outs[0]
        assert "more wait" not in outs[1] and "younger than settle" not in outs[1]
        # a new pair: the next run counts it, and only it; one younger than the settle time
        # waits, and the run says so
        write_pairs(str(db), [pair(99, now - 1800, segment="chat"), pair(98, now, segment="chat")])
        result = monitor(pytester, path)
        assert result.ret == 0
        assert states(db)["chat"]["last"]["n"] == 31
        out = result.stdout.str()
        assert "1 new pairs judged" in out and "; 1 younger than settle (5m) wait" in out, out


def test_a_changed_tolerance_or_alert_line_is_refused_until_a_reset(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored sequence's guarantee holds for the tolerance, alpha and alert_at it began with:
    a contract that changed one of them is an ERROR naming it and the reset, before any pair is
    judged; --parity-monitor-reset starts the sequences over under the new values."""
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    t0 = time.time() - 4 * 3600
    write_pairs(str(db), stream(0, 10, t0))
    judge = ScriptedJudge()
    with FakeServer(answer=judge) as j, Receiver() as hook:
        path = contract(pytester.path / "drift.yaml", j.base_url, hook.url)
        assert monitor(pytester, path).ret == 0
        saved = states(db)
        write_pairs(str(db), stream(10, 20, t0))
        good = path.read_text()
        for change, what in (
            ("defaults: {tolerance: 0.2}", "started with tolerance 0.1, the contract now says 0.2"),
            ("monitor:\n  alert_at: 0.25", "started with alert_at 0.5, the contract now says 0.25"),
            ("monitor:\n  alpha: 0.01", "started with alpha 0.05, the contract now says 0.01"),
        ):
            key = change.split(":")[0]
            path.write_text(
                good.replace(f"{key}: {{tolerance: 0.1}}", change, 1)
                if key == "defaults"
                else good.replace("monitor:", change, 1)
            )
            before = len(judge.bodies)
            result = monitor(pytester, path)
            out = result.stdout.str()
            assert result.ret == 1, out
            assert f"task drift: segment chat: the stored monitor was {what}" in out, out
            assert "--parity-monitor-reset" in out
            assert len(judge.bodies) == before, "refused before any pair was judged"
            assert states(db) == saved, "nothing saved"
        result = monitor(pytester, path, "--parity-monitor-reset")
        assert result.ret == 0, result.stdout.str()
        write_pairs(str(db), stream(20, 25, time.time() - 3600))
        assert monitor(pytester, path).ret == 0
        st = states(db)["chat"]["monitor"]
        assert (st["alpha"], st["tolerance"]) == (0.01, 0.1)


def test_an_alert_says_whether_the_inputs_changed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 counts short English prompts on both segments. Before run 2, ``chat`` gets long
    prompts in Cyrillic and the new stack loses them all; ``code`` stays as it was. The alert
    on chat (terminal and webhook) names the shifted inputs against run 1's window; the report
    shows the panels. The reference never holds the pairs it is compared with."""
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    t0 = time.time() - 4 * 3600
    short = [
        pair(2 * k + s, t0 + 20 * k + 10 * s, segment=seg, content=f"Question p{k}: hi there?")
        for k in range(40)
        for s, seg in enumerate(("chat", "code"))
    ]
    write_pairs(str(db), short)
    with FakeServer(answer=ScriptedJudge()) as j, Receiver() as hook:
        path = contract(pytester.path / "drift.yaml", j.base_url, hook.url)
        assert monitor(pytester, path).ret == 0
        long_ru = "Вопрос о возврате денег за заказ, который пришёл повреждённым и без чека. " * 4
        later = [
            pair(100 + 2 * k, t0 + 1000 + 20 * k, new_q=2, segment="chat", content=long_ru)
            for k in range(40)
        ] + [
            pair(101 + 2 * k, t0 + 1010 + 20 * k, segment="code", content=f"Question q{k}: hi?")
            for k in range(40)
        ]
        write_pairs(str(db), later)
        result = monitor(pytester, path)
    out = result.stdout.str()
    assert result.ret == 10, out
    line = next(x for x in out.splitlines() if "segment chat:" in x)
    assert "ALERT" in line and "inputs changed: " in line and "chars (cliffs_delta +" in line, line
    assert "script" in line, line
    code = next(x for x in out.splitlines() if "segment code:" in x)
    assert "no drift shown" in code
    (doc,) = hook.posts
    (alert,) = doc["alerts"]
    assert alert["labels"]["segment"] == "chat"
    assert alert["annotations"]["inputs"].startswith("inputs changed: ")
    page = (pytester.path / "drift.html").read_text()
    assert "The inputs changed: " in page and "Did the inputs change?" in page


ENT = "ent<script>alert(1)</script>\u202eprise"  # a segment name from a header: untrusted
CHAT_Q = "Question p{i:04d}: how do I reset the password of my account?"
ENT_Q = "Question p{i:04d}: summarise clause {c} of the master services agreement for legal."


def mix_stream(start: int, n: int, t0: float, ent_share: int, ent_bad: bool) -> list[Any]:
    """Pairs ``start .. start+n-1``, one every 10 s; ``ent_share`` in 10 of them go to the ENT
    segment. Each segment's requests and quality are the same in every window: chat is an A/A
    stream, ENT loses 70% of its pairs when ``ent_bad`` (from the start: it never drifts)."""
    out = []
    for i in range(start, start + n):
        ts = t0 + 10 * i
        # i // 10 takes each last digit equally often in every block of 100 pairs: exact rates
        aa = aa_new_q(i // 10)
        if i % 10 < ent_share:
            q = (2 if (i // 10) % 10 < 7 else 3) if ent_bad else aa
            content = ENT_Q.format(i=i, c=i % 7)
            out.append(pair(i, ts, new_q=q, segment=ENT, content=content))
        else:
            out.append(pair(i, ts, new_q=aa, segment="chat", content=CHAT_Q.format(i=i)))
    return out


def test_an_alert_names_a_changed_segment_mix_when_no_segment_drifted(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simpson's case: each segment's requests and quality stay as they were; only the mix
    moves, ENT from 10% to 40% of requests. ENT was always worse (too few pairs to tell at
    10%); at 40% its alert fires, and its explanation names the mix change, with the shares, in
    the terminal, the webhook's JSON document and the report; the untrusted segment name stays
    inert in the terminal and the page."""
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    t0 = time.time() - 4 * 3600
    write_pairs(str(db), mix_stream(0, 100, t0, ent_share=1, ent_bad=True))
    with FakeServer(answer=ScriptedJudge()) as j, Receiver() as hook:
        path = contract(pytester.path / "drift.yaml", j.base_url, hook.url)
        first = monitor(pytester, path)
        assert first.ret == 0, first.stdout.str()
        assert "segment mix" not in first.stdout.str(), "run 1: no earlier window to compare"
        # run 2: the same segments, the same requests, the same quality; 40% ENT
        write_pairs(str(db), mix_stream(100, 100, t0, ent_share=4, ent_bad=True))
        second = monitor(pytester, path)
    out = second.stdout.str()
    assert second.ret == 10, out
    assert "\u202e" not in out and "<U+202E>" in out
    shown = "ent<script>alert(1)</script><U+202E>prise"
    line = next(x for x in out.splitlines() if f"segment {shown}:" in x)
    assert "ALERT" in line, line
    assert "inputs unchanged (6 features and the segment mix tested" in line, line
    assert f"segment mix changed: {shown} 10% -> 40%" in line, line
    assert "of requests (p=" in line and "Holm-adjusted" in line, line
    chat = next(x for x in out.splitlines() if "segment chat:" in x)
    assert "no drift shown" in chat, chat
    task_line = next(x for x in out.splitlines() if x.strip().startswith("segment mix changed"))
    assert f"{shown} 10% -> 40%, chat 90% -> 60% of requests" in task_line, task_line
    assert "100 reference, 100 new requests" in task_line, task_line
    (doc,) = hook.posts
    (alert,) = doc["alerts"]
    assert alert["labels"]["segment"] == ENT  # JSON keeps the exact name
    assert f"segment mix changed: {ENT} 10% -> 40%" in alert["annotations"]["inputs"]
    assert alert["annotations"]["segment_mix"].startswith(f"segment mix changed: {ENT} 10%")
    page = (pytester.path / "drift.html").read_text()
    assert "<script" not in page and "\u202e" not in page
    assert "Did the segment mix change?" in page
    assert (
        "Segment mix changed: ent&lt;script&gt;alert(1)&lt;/script&gt;&lt;U+202E&gt;prise" in page
    )
    assert "10.0%" in page and "40.0%" in page


def test_an_unchanged_mix_gets_no_note_and_a_moved_one_without_alert_says_what_it_means(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both segments A/A. Run 2 keeps the 10% mix: no segment-mix note anywhere. Run 3 moves ENT
    to 40%: no segment alerts, and the task's lines say the mix changed and that a change of the
    pooled score is the mix, not the quality within any segment."""
    monkeypatch.setenv("HOOK_TOKEN", "x-token")
    db = pytester.path / "shadow.sqlite"
    t0 = time.time() - 4 * 3600
    write_pairs(str(db), mix_stream(0, 100, t0, ent_share=1, ent_bad=False))
    with FakeServer(answer=ScriptedJudge()) as j, Receiver() as hook:
        path = contract(pytester.path / "drift.yaml", j.base_url, hook.url)
        assert monitor(pytester, path).ret == 0
        write_pairs(str(db), mix_stream(100, 100, t0, ent_share=1, ent_bad=False))
        same = monitor(pytester, path)
        out = same.stdout.str()
        assert same.ret == 0, out
        assert "segment mix changed" not in out and "no segment drifted" not in out, out
        page = (pytester.path / "drift.html").read_text()
        assert "Segment mix changed" not in page
        assert "No material change of the segment mix against the reference window" in page
        write_pairs(str(db), mix_stream(200, 100, t0, ent_share=4, ent_bad=False))
        moved = monitor(pytester, path)
        assert hook.posts == []
    out = moved.stdout.str()
    assert moved.ret == 0, out
    line = next(x for x in out.splitlines() if x.strip().startswith("segment mix changed"))
    assert "<U+202E>prise 10% -> 40%" in line and "200 reference, 100 new requests" in line
    assert "no segment drifted: a change of the task's pooled score is this mix shift" in line
    assert "Segment mix changed" in (pytester.path / "drift.html").read_text()
