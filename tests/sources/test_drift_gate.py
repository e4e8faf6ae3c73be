"""``source: shadow`` gates stored shadow pairs like any task: judged pairwise by a real judge
server, latency compared on the stored timings, and neither stack asked anything (their URLs are
closed ports: a preflight or a request would fail the run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from drift_data import T0, pair, write_pairs
from judge_script import ScriptedJudge
from servers import FakeServer, closed_port


def contract(
    pytester: pytest.Pytester, judge_url: str, shadow: str, *, checks: str = "", tol: float = 0.1
) -> Path:
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    return pytester.makefile(
        ".yaml",
        drift=f"""
        baseline:  {{kind: openai, base_url: "{dead}", model: old-m}}
        candidate: {{kind: vllm, base_url: "{dead}", model: new-m}}
        judge: {{kind: openai, base_url: "{judge_url}", model: judge-m, max_concurrency: 4}}
        defaults: {{tolerance: {tol}}}
        tasks:
          - {{name: drift, source: shadow, shadow: {shadow}{checks}}}
        """,
    )


def run(pytester: pytest.Pytester, path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    out = pytester.path / "parity.json"
    result = pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-no-cache",
        f"--parity-json={out}",
        "-p",
        "no:hypothesispytest",  # its terminal summary costs a second a run
        *args,
    )
    return result, json.loads(out.read_text()) if out.is_file() else {}


def test_shadow_pairs_across_the_cutover_gate_quality_and_latency_without_asking_the_stacks(
    pytester: pytest.Pytester,
) -> None:
    # 80 pairs: the first 40 before the cutover (old serves, new shadows), the last 40 after it
    # (new serves, old shadows). The new stack is worse on every second pair and twice as slow;
    # a wrong side mapping after the cutover would turn its losses into wins.
    recs = [
        pair(
            i,
            T0 + 60 * i,
            new_q=2 if i % 2 else 3,
            serving="baseline" if i < 40 else "candidate",
            old_latency=0.2 + 0.001 * (i % 7),
            new_latency=0.4 + 0.002 * (i % 7),
        )
        for i in range(80)
    ]
    recs.append(pair(999, T0 + 60 * 200))  # outside the window
    write_pairs(str(pytester.path / "shadow.sqlite"), recs)
    judge = ScriptedJudge()
    with FakeServer(answer=judge) as j:
        path = contract(
            pytester,
            j.base_url,
            f"{{store: shadow.sqlite, window: {{since: {T0}, until: {T0 + 60 * 100}}}}}",
        )
        result, report = run(pytester, path)
    t = report["tasks"][0]
    assert t["error"] is None, result.stdout.str()
    assert t["n_items"] == 80
    delta = t["checks"]["delta"]
    assert delta["numbers"]["delta"] == pytest.approx(-0.5)
    assert delta["status"] == "FAIL"
    lat = t["checks"]["latency"]
    assert lat["status"] == "FAIL", lat
    p50 = lat["numbers"]["quantiles"]["p50"]
    assert p50["change"] == pytest.approx(1.0, abs=0.05) and p50["lower"] > 0.25
    ttft = lat["numbers"]["quantiles"]["ttft_p50"]
    assert ttft["change"] == pytest.approx(1.0, abs=0.05)
    assert "p99" not in lat["numbers"]["quantiles"] or lat["numbers"]["quantiles"]["p99"]["n"] == 80
    # both orders of every pair went to the judge; nothing else was asked
    assert len(judge.bodies) >= 160
    notes = " ".join(t.get("notes") or [])
    assert "80 shadow pairs" in notes and "after the cutover on 40 pairs" in notes
    assert result.ret == 1


def test_an_equal_stack_passes_and_a_sample_is_seeded(pytester: pytest.Pytester) -> None:
    recs = [pair(i, T0 + 60 * i, new_latency=0.2, old_latency=0.2) for i in range(300)]
    write_pairs(str(pytester.path / "shadow.sqlite"), recs)
    judge = ScriptedJudge()
    with FakeServer(answer=judge) as j:
        path = contract(
            pytester,
            j.base_url,
            "{store: shadow.sqlite, sample: 60, seed: 3}",
            checks=", checks: {latency: {p99: off}}",
            tol=0.3,
        )
        result, report = run(pytester, path)
        _, again = run(pytester, path)
    t = report["tasks"][0]
    assert t["error"] is None, result.stdout.str()
    assert t["n_items"] == 60
    assert t["checks"]["delta"]["numbers"]["delta"] == 0
    assert t["checks"]["latency"]["status"] == "PASS"
    assert t["data_digest"] == again["tasks"][0]["data_digest"], "the same seed, the same sample"


def test_bad_shadow_options_are_one_line_errors(pytester: pytest.Pytester) -> None:
    path = contract(
        pytester,
        "http://127.0.0.1:1/v1",
        "{store: 'postgresql://u:hunter2@db/x'}",
    )
    result = pytester.runpytest(f"--parity-contract={path}")
    assert result.ret == 4
    err = result.stderr.str()
    assert "tasks[0].shadow.store: the URL holds a password" in err and "PGPASSWORD" in err
    assert "hunter2" not in result.stdout.str()
    path = contract(pytester, "http://127.0.0.1:1/v1", "{store: s.sqlite, window: {last: soon}}")
    result = pytester.runpytest(f"--parity-contract={path}")
    assert result.ret == 4
    assert "tasks[0].shadow.window.last: not a duration: 'soon'" in result.stderr.str()


def test_pairs_stored_by_the_real_proxy_are_gated_from_the_same_contract(
    pytester: pytest.Pytester,
) -> None:
    import httpx
    from shadow_servers import ProxyProcess, StreamServer, write_contract

    judge = ScriptedJudge()
    with FakeServer(answer=judge) as j:
        with StreamServer("old") as old, StreamServer("new", chunk_delay=0.002) as new:
            path = write_contract(
                pytester.path / "drift.yaml",
                old.base_url,
                new.base_url,
                {"store": {"url": "shadow.sqlite", "batch": 5, "flush_seconds": 0.05}},
                judge={"kind": "openai", "base_url": j.base_url, "model": "judge-m"},
                defaults={"tolerance": 0.3},
                tasks=[
                    {
                        "name": "drift",
                        "source": "shadow",
                        "shadow": {"store": "shadow.sqlite"},
                        "checks": {"latency": {"min_pairs": 10}},
                    }
                ],
            )
            with ProxyProcess(path) as proxy:
                with httpx.Client(timeout=30) as h:
                    for i in range(24):
                        body = {
                            "model": "m",
                            "stream": i % 2 == 0,
                            "messages": [{"role": "user", "content": f"Question p{i}: hi"}],
                        }
                        r = h.post(proxy.url + "/v1/chat/completions", json=body)
                        assert r.status_code == 200
                assert proxy.wait_for("parity_shadow_pairs_total", 24) == 24
                assert proxy.stop()[0] == 0
            asked = (len(old.received), len(new.received))
        # both stacks are gone: the gate reads the store only
        result, report = run(pytester, path)
    t = report["tasks"][0]
    assert t["error"] is None, result.stdout.str()
    assert t["n_items"] == 24
    assert asked == (24, 24)
    assert len(judge.bodies) >= 48  # both orders of every pair
    lat = t["checks"]["latency"]["numbers"]["quantiles"]
    assert lat["p50"]["n"] == 24 and lat["ttft_p50"]["n"] == 12  # TTFT: the streamed half


@pytest.mark.parametrize("mode", ["gate", "monitor"])
def test_parity_aa_with_a_shadow_task_is_a_one_line_error(
    pytester: pytest.Pytester, mode: str
) -> None:
    # Stored pairs have one answer per stack: there is no second baseline sample to compare,
    # and the stacks are not asked (their ports are closed here).
    write_pairs(str(pytester.path / "shadow.sqlite"), [pair(i, T0 + 60 * i) for i in range(5)])
    path = contract(pytester, f"http://127.0.0.1:{closed_port()}/v1", "{store: shadow.sqlite}")
    args = ["--parity-monitor"] if mode == "monitor" else []
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-aa=rerun", *args)
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    err = [line for line in result.stderr.str().splitlines() if line.strip()]
    assert len(err) == 1, err
    assert "--parity-aa: task drift is source: shadow" in err[0], err[0]
    assert "target" in err[0] and "drop --parity-aa" in err[0], err[0]
