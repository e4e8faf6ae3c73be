"""Response cache: keys, isolation of roles, failures not stored, refresh, crash safety, secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from servers import FakeServer

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.cache import CacheError, ResponseCache
from pytest_parity.endpoints.http import Request, Response, RetryPolicy, open_endpoint

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(base_s=0.01, cap_s=0.05)


def spec(base_url: str, role: str = "baseline", **kw: Any) -> EndpointSpec:
    base: dict[str, Any] = {
        "role": role,
        "kind": "vllm",
        "base_url": base_url,
        "model": "test-model",
        "params": MappingProxyType({"temperature": 0.0, "max_tokens": 16}),
        "max_retries": 0,
        "timeout": 5.0,
    }
    base.update(kw)
    return EndpointSpec(**base)


def ask(i: int) -> Request:
    return Request(str(i), messages=({"role": "user", "content": f"question {i}"},))


def run(s: EndpointSpec, cache: ResponseCache | None, n: int = 5) -> list[Response]:
    async def go() -> list[Response]:
        ep = open_endpoint(s, cache=cache, retry=FAST)
        try:
            return list(await asyncio.gather(*(ep.complete(ask(i)) for i in range(n))))
        finally:
            await ep.aclose()

    return asyncio.run(go())


def test_a_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    with FakeServer() as srv, ResponseCache(tmp_path) as cache:
        first = run(spec(srv.base_url), cache)
        second = run(spec(srv.base_url), cache)
        assert len(srv.received) == 5
    assert [r.text for r in second] == [r.text for r in first]
    assert all(r.cached for r in second) and not any(r.cached for r in first)
    assert cache.hits == 5 and cache.writes == 5


def test_baseline_and_candidate_never_share_entries(tmp_path: Path) -> None:
    with FakeServer() as srv, ResponseCache(tmp_path) as cache:
        run(spec(srv.base_url, "baseline"), cache)
        out = run(spec(srv.base_url, "candidate"), cache)
        assert len(srv.received) == 10 and not any(r.cached for r in out)


def test_model_params_engine_version_and_served_weights_are_part_of_the_key(tmp_path: Path) -> None:
    with FakeServer() as srv, ResponseCache(tmp_path) as cache:
        run(spec(srv.base_url), cache, 1)
        run(spec(srv.base_url, params=MappingProxyType({"temperature": 0.5})), cache, 1)
        run(spec(srv.base_url, model="other"), cache, 1)
        srv.engine_version = "0.0.2-test"  # the engine was upgraded behind the same URL
        run(spec(srv.base_url), cache, 1)
        srv.model = "requantised"  # other weights behind the same URL and alias
        run(spec(srv.base_url), cache, 1)
        assert len(srv.received) == 5
        run(spec(srv.base_url), cache, 1)
        assert len(srv.received) == 5


def test_failed_responses_are_not_cached(tmp_path: Path) -> None:
    with FakeServer(require_key="k") as srv, ResponseCache(tmp_path) as cache:
        out = run(spec(srv.base_url), cache, 2)
        assert not any(r.ok for r in out) and cache.count() == 0
        srv.require_key = None
        out = run(spec(srv.base_url), cache, 2)
        assert all(r.ok and not r.cached for r in out) and cache.count() == 2


def test_refresh_resends_and_replaces(tmp_path: Path) -> None:
    with FakeServer() as srv:
        with ResponseCache(tmp_path) as cache:
            run(spec(srv.base_url), cache, 2)
        srv.answer = lambda body: "new answer"
        with ResponseCache(tmp_path, refresh=True) as cache:
            out = run(spec(srv.base_url), cache, 2)
        assert [r.text for r in out] == ["new answer"] * 2 and len(srv.received) == 4
        with ResponseCache(tmp_path) as cache:
            again = run(spec(srv.base_url), cache, 2)
        assert [r.text for r in again] == ["new answer"] * 2 and all(r.cached for r in again)


def test_cache_uses_wal_and_reports_an_unusable_directory(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        db = sqlite3.connect(cache.path)
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.close()
    assert mode == "wal"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match=r"cannot open the response cache.*--parity-cache-dir"):
        ResponseCache(blocker / "sub")


def test_failed_response_cannot_be_stored(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache, pytest.raises(ValueError, match="not cached"):
        cache.put("k", {"text": "", "error": "boom"}, endpoint_key="e", item_id="i")


def test_api_key_is_never_written_to_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-PLANTED-cache-7781"
    monkeypatch.setenv("CACHE_KEY", key)
    with FakeServer(require_key=key) as srv, ResponseCache(tmp_path) as cache:
        out = run(spec(srv.base_url, api_key_env="CACHE_KEY"), cache, 3)
        assert all(r.ok for r in out) and cache.count() == 3
    for f in tmp_path.iterdir():
        assert key.encode() not in f.read_bytes(), f


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pytest_parity.endpoints.cache import ResponseCache
    from pytest_parity.contract.spec import EndpointSpec
    from pytest_parity.endpoints.http import Request, open_endpoint

    base_url, cache_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

    async def main():
        spec = EndpointSpec(role="baseline", kind="vllm", base_url=base_url, model="test-model",
                            max_concurrency=4, max_retries=0)
        ep = open_endpoint(spec, cache=ResponseCache(cache_dir))
        async def one(i):
            r = await ep.complete(Request(str(i), prompt=None,
                                          messages=({"role": "user", "content": f"question {i}"},)))
            print(i, "cached" if r.cached else "sent", flush=True)
        await asyncio.gather(*(one(i) for i in range(n)))
        await ep.aclose()

    asyncio.run(main())
    """
)


def test_a_sigkilled_run_restarted_resends_no_answered_request(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    n = 40
    with FakeServer(latency_s=0.03) as srv:
        args = [sys.executable, str(script), srv.base_url, str(tmp_path / "cache"), str(n)]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout is not None
        done_first: set[str] = set()
        while len(done_first) < 12:
            line = child.stdout.readline()
            assert line, "the child ended before it could be killed"
            done_first.add(line.split()[0])
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        sent_before = len(srv.received)
        assert sent_before < n  # killed mid-run

        out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
        resent = {b["messages"][0]["content"].split()[-1] for b in srv.received[sent_before:]}
    finished = dict(line.split() for line in out.splitlines())
    assert set(finished) == {str(i) for i in range(n)}  # every item answered in the end
    assert not (resent & done_first)  # nothing answered before the kill was sent again
    assert {i for i, how in finished.items() if how == "cached"} >= done_first
    assert len(resent) <= n - len(done_first)


WRITER = textwrap.dedent(
    """
    import sys
    from pytest_parity.endpoints.cache import ResponseCache
    cache = ResponseCache(sys.argv[1])
    for i in range(300):
        key = ResponseCache.key(sys.argv[2], str(i))
        cache.put(key, {"text": str(i), "error": None}, endpoint_key=sys.argv[2], item_id=str(i))
        assert cache.get(key)["text"] == str(i)
    cache.close()
    """
)


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    """What xdist workers do: write the same file at the same time."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"worker{w}"], env=env)
        for w in range(2)
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    with ResponseCache(tmp_path) as cache:
        assert cache.count() == 600
        assert cache.count(endpoint_key="worker1") == 300


@pytest.mark.parametrize("mode", ["resume", "reuse"])
def test_a_cache_that_cannot_be_written_does_not_fail_the_answers(
    tmp_path: Path, mode: str
) -> None:
    with FakeServer() as srv, ResponseCache(tmp_path, mode=mode) as cache:
        other = sqlite3.connect(cache.path)
        other.execute("DROP TABLE responses")  # what a full or broken disk looks like to sqlite
        other.commit()
        other.close()
        out = run(spec(srv.base_url), cache, 3)
        assert all(r.ok for r in out)
        assert cache.write_errors == 3 and cache.writes == 0
        assert cache.last_write_error is not None and "no such table" in cache.last_write_error
        # a fresh resume run asks the file nothing (no row can carry its new tag); reuse does
        assert cache.read_errors == (0 if mode == "resume" else 3)


def test_writes_are_committed_in_groups(tmp_path: Path) -> None:
    async def go(cache: ResponseCache) -> None:
        await asyncio.gather(
            *(
                cache.aput(
                    ResponseCache.key("e", str(i)), {"text": "t"}, endpoint_key="e", item_id=str(i)
                )
                for i in range(200)
            )
        )

    with ResponseCache(tmp_path) as cache:
        asyncio.run(go(cache))
        assert cache.writes == 200 and cache.count() == 200
        assert cache.commits < 200  # a burst costs fewer commits than rows


def _commit_after(monkeypatch: pytest.MonkeyPatch, quiet_s: float, max_s: float) -> None:
    """The group commit's two timers: a pause in the answers, the batch's age."""
    from pytest_parity.endpoints import cache as cache_mod

    monkeypatch.setattr(cache_mod, "FLUSH_QUIET_S", quiet_s)
    monkeypatch.setattr(cache_mod, "FLUSH_MAX_S", max_s)


def _put(cache: ResponseCache, name: str) -> asyncio.Future[None]:
    key = ResponseCache.key("e", name)
    return asyncio.ensure_future(cache.aput(key, {"text": name}, endpoint_key="e", item_id=name))


def test_a_batch_is_committed_once_no_request_is_still_being_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No timer can commit during the test: only the count of requests being answered.
    _commit_after(monkeypatch, 60.0, 60.0)

    async def go(cache: ResponseCache) -> None:
        cache.asked()
        cache.asked()  # two requests at their servers
        cache.answered()
        first = _put(cache, "a")
        for _ in range(5):
            await asyncio.sleep(0)
        assert not first.done() and cache.commits == 0  # the other answer may still join
        cache.asked()
        cache.answered()
        second = _put(cache, "b")
        for _ in range(5):
            await asyncio.sleep(0)
        assert not first.done() and cache.commits == 0
        cache.answered()  # the first of the two failed: nothing more can join the batch
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert cache.commits == 1 and cache.writes == 2 and cache.asking == 0

    with ResponseCache(tmp_path) as cache:
        asyncio.run(go(cache))
        assert cache.count() == 2


def test_a_batch_is_committed_after_a_pause_in_the_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    _commit_after(monkeypatch, 0.05, 60.0)

    async def go(cache: ResponseCache) -> float:
        cache.asked()  # a request still at its server: only a timer can commit
        t0 = time.perf_counter()
        await asyncio.wait_for(_put(cache, "a"), 10)
        return time.perf_counter() - t0

    with ResponseCache(tmp_path) as cache:
        waited = asyncio.run(go(cache))
        assert 0.045 <= waited < 5  # the pause (0.05 s), not the batch's age bound (60 s)
        assert cache.commits == 1


def test_a_steady_stream_of_answers_is_committed_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An answer every 10 ms for 0.6 s never pauses 0.5 s: only the batch's age (0.1 s) commits.
    _commit_after(monkeypatch, 0.5, 0.1)

    async def go(cache: ResponseCache) -> int:
        cache.asked()  # a request that never ends
        puts = []
        for i in range(60):
            puts.append(_put(cache, f"s{i}"))
            await asyncio.sleep(0.01)
        while_streaming = cache.commits
        await asyncio.wait_for(asyncio.gather(*puts), 10)
        return while_streaming

    with ResponseCache(tmp_path) as cache:
        assert asyncio.run(go(cache)) >= 2  # several batches before the stream ended
        assert cache.writes == 60 and cache.count() == 60


def test_the_count_of_requests_being_answered_returns_to_zero(tmp_path: Path) -> None:
    """Answered, failed and cancelled requests all leave the count (else no batch would be
    committed before its timers)."""

    async def go(ok: str, down: str, slow: str, cache: ResponseCache) -> None:
        eps = [open_endpoint(spec(url), cache=cache, retry=FAST) for url in (ok, down, slow)]
        try:
            await asyncio.gather(eps[0].complete(ask(1)), eps[1].complete(ask(2)))
            assert cache.asking == 0
            hung = asyncio.ensure_future(eps[2].complete(ask(3)))
            for _ in range(500):  # past the engine probe, at the server
                if cache.asking:
                    break
                await asyncio.sleep(0.01)
            assert cache.asking == 1
            hung.cancel()
            await asyncio.gather(hung, return_exceptions=True)
            assert cache.asking == 0
        finally:
            for ep in eps:
                await ep.aclose()

    with (
        FakeServer() as ok,
        FakeServer(require_key="not-sent") as down,  # HTTP 401: a failed request
        FakeServer(latency_s=30) as slow,
        ResponseCache(tmp_path) as cache,
    ):
        asyncio.run(go(ok.base_url, down.base_url, slow.base_url, cache))
        assert cache.count() == 1 and cache.asking == 0


def test_opening_waits_for_a_lock_held_by_another_connection(tmp_path: Path) -> None:
    import threading

    from pytest_parity.endpoints.cache import CACHE_FILE

    holder = sqlite3.connect(tmp_path / CACHE_FILE, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")  # what a worker switching the file to WAL holds
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    with ResponseCache(tmp_path) as cache:
        assert cache.count() == 0
    release.join()
    holder.close()


def test_a_lock_the_busy_handler_does_not_cover_is_retried_with_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_parity.endpoints import cache as cache_mod

    monkeypatch.setattr(cache_mod.time, "sleep", lambda s: None)
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    cache_mod._with_busy_retry(flaky)
    assert len(calls) == 3

    def never() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        cache_mod._with_busy_retry(never, attempts=4)
    assert len(calls) == 4

    def broken() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: x")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        cache_mod._with_busy_retry(broken)
    assert len(calls) == 1  # only locks are waited for


OPENER = textwrap.dedent(
    """
    import sys, time
    from pytest_parity.endpoints.cache import ResponseCache
    start = float(sys.argv[2])
    while time.time() < start:
        pass
    cache = ResponseCache(sys.argv[1])
    key = ResponseCache.key(sys.argv[3], "x")
    cache.put(key, {"text": "t"}, endpoint_key=sys.argv[3], item_id="x")
    cache.close()
    """
)


def test_many_processes_opening_a_new_cache_at_once(tmp_path: Path) -> None:
    """xdist workers starting together: each opens (and switches to WAL) the same new file."""
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for round_ in range(1):
        where = tmp_path / f"round{round_}"
        start = time.time() + 1.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(where), str(start), f"w{w}"],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(6)
        ]
        errors = [p.communicate(60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        with ResponseCache(where) as cache:
            assert cache.count() == 6


def test_reads_asked_in_one_turn_of_the_loop_are_one_lookup(tmp_path: Path) -> None:
    """A window of requests asks its keys together: one SELECT for the burst, each answer the
    one stored under its own key, a key not stored a miss, a resume tag still respected."""
    keys = [ResponseCache.key("e", str(i)) for i in range(300)]
    with ResponseCache(tmp_path, mode="resume") as cache:
        for i, k in enumerate(keys[:200]):
            cache.put(k, {"text": str(i)}, endpoint_key="e", item_id=str(i), run="c:1")
        cache.put(keys[250], {"text": "old"}, endpoint_key="e", item_id="250", run="c:0")
        statements: list[str] = []
        cache._db.set_trace_callback(statements.append)

        async def go() -> list[dict[str, Any] | None]:
            return list(await asyncio.gather(*(cache.aget(k, "c:1") for k in keys)))

        got = asyncio.run(go())
        selects = [s for s in statements if s.startswith("SELECT")]
        assert len(selects) == 1 and selects[0].count("?") == 0  # one statement, bound values
        assert [g and g["text"] for g in got[:200]] == [str(i) for i in range(200)]
        assert got[200:] == [None] * 100  # not stored, or stored under another run (250)
        assert cache.hits == 200 and cache.misses == 100


def test_a_batched_lookup_survives_a_damaged_row_and_a_cancelled_request(tmp_path: Path) -> None:
    with ResponseCache(tmp_path, mode="reuse") as cache:
        cache.put("good", {"text": "ok"}, endpoint_key="e", item_id="1")
        cache.put("bad", {"text": "x"}, endpoint_key="e", item_id="2")
        cache._db.execute("UPDATE responses SET response = '{not json' WHERE key = 'bad'")

        async def go() -> tuple[Any, Any]:
            doomed = asyncio.ensure_future(cache.aget("good"))
            await asyncio.sleep(0)
            doomed.cancel()  # cancelled while its lookup is queued: the batch goes on
            return await asyncio.gather(cache.aget("good"), cache.aget("bad"))

        good, bad = asyncio.run(go())
        assert good == {"text": "ok"} and bad is None  # the damaged row is asked again
        assert cache.read_errors == 1 and "unreadable" in str(cache.last_read_error)


def test_refresh_reads_nothing_in_batches_either(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        cache.put("k", {"text": "ok"}, endpoint_key="e", item_id="1")
    with ResponseCache(tmp_path, refresh=True) as cache:
        assert asyncio.run(cache.aget("k")) is None and cache.misses == 1


def test_a_fresh_run_asks_the_file_only_for_what_it_wrote_itself(tmp_path: Path) -> None:
    """A run that begins a new generation (the first, or the one after a finished run) finds
    no row under its tag but its own: other keys miss without a lookup, its own answers are
    still reused (two tasks asking the same question), and a run resumed is looked up."""
    keys = [ResponseCache.key("e", str(i)) for i in range(100)]

    def selects(cache: ResponseCache, ks: list[str], tag: str) -> tuple[list[Any], int]:
        statements: list[str] = []
        cache._db.set_trace_callback(statements.append)

        async def go() -> list[Any]:
            return list(await asyncio.gather(*(cache.aget(k, tag) for k in ks)))

        got = asyncio.run(go())
        cache._db.set_trace_callback(None)
        return got, sum(s.startswith("SELECT") for s in statements)

    with ResponseCache(tmp_path, contract="c", session="s1") as cache:
        tag = cache.begin("e")
        got, n = selects(cache, keys, tag)
        assert got == [None] * 100 and n == 0 and cache.misses == 100  # nothing asked
        for i, k in enumerate(keys[:10]):  # the first task's answers
            cache.put(k, {"text": str(i)}, endpoint_key="e", item_id=str(i), run=tag)
        got, n = selects(cache, keys[:20], tag)  # a second task asking some of them again
        assert (
            n == 1 and [g and g["text"] for g in got] == [str(i) for i in range(10)] + [None] * 10
        )
    with ResponseCache(tmp_path, contract="c", session="s2") as cache:  # that run never finished
        tag2 = cache.begin("e")
        assert tag2 == tag
        got, n = selects(cache, keys[:20], tag2)
        assert n == 1 and sum(g is not None for g in got) == 10  # resumed: looked up, reused
        cache.finish()
    with ResponseCache(tmp_path, contract="c", session="s3") as cache:  # after a finished run
        tag3 = cache.begin("e")
        assert tag3 != tag
        got, n = selects(cache, keys[:20], tag3)
        assert got == [None] * 20 and n == 0
    with ResponseCache(tmp_path, contract="c", session="s4", mode="reuse") as cache:
        got, n = selects(cache, keys[:20], cache.begin("e"))
        assert n == 1 and sum(g is not None for g in got) == 10  # reuse: any stored answer


@pytest.mark.parametrize(
    "response",
    [
        Response(text=" 42", finish_reason="length", usage={"prompt_tokens": 3}, latency_s=0.2),
        Response(
            text="",
            finish_reason="tool_calls",
            tool_calls=({"name": "f", "arguments": "{}", "id": "c1"},),
            model="m",
            attempts=3,
            logprobs=(-0.1, -2.0),
            tokens=("a", "b"),
            top_logprobs=({"a": -0.1}, {"b": -2.0}),
            raw={"choices": []},
        ),
    ],
)
def test_a_stored_answer_reads_back_as_it_was(response: Response) -> None:
    """The cache keeps only what is not a default; reading it back loses nothing."""
    import dataclasses

    stored = response.to_stored()
    assert "error" not in stored and "cached" not in stored
    back = Response.from_dict(stored, cached=True)
    assert dataclasses.replace(back, cached=False) == response
    assert len(stored) < len(response.to_dict())


def test_rows_left_queued_by_a_cancelled_run_are_committed_by_the_next_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task stopped mid-run (its items cancelled) ends its event loop with rows queued and
    a timer that loop will never fire; the next task's loop commits them with its own."""
    _commit_after(monkeypatch, 0.05, 0.1)

    async def stopped(cache: ResponseCache) -> None:
        cache.asked()  # still being answered when the task is stopped
        put = _put(cache, "queued")
        await asyncio.sleep(0)
        put.cancel()
        cache.answered()  # (cancelled: Endpoint.complete's finally)
        cache.asked()

    async def next_task(cache: ResponseCache) -> None:
        # a request is in flight all along: only a timer of this loop can commit
        await asyncio.wait_for(_put(cache, "next"), 5)

    with ResponseCache(tmp_path) as cache:
        asyncio.run(stopped(cache))
        assert cache.commits == 0 and cache.asking == 1
        asyncio.run(next_task(cache))
        assert cache.count() == 2
