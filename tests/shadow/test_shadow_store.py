"""The shadow store: the read API the drift gate uses, retention, and PostgreSQL shared by two
proxies (a private PostgreSQL server from Debian's packages, started for this module; `.ci/run`
installs the package: `apt-get install postgresql`)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from shadow_servers import ProxyProcess, StreamServer, write_contract

from pytest_parity.shadow.writer import StoreWriter
from pytest_parity.store.pairs import COLUMN_NAMES, SqliteStore, open_store

PG_HINT = "install it: apt-get install postgresql (as .ci/run does)"


def _rec(ts: float, segment: str, i: int) -> dict[str, Any]:
    return {
        "ts": ts,
        "instance": "t",
        "segment": segment,
        "path": "/v1/chat/completions",
        "protocol": "chat",
        "model": "m",
        "stream": False,
        "request": {"messages": [{"role": "user", "content": f"q{i}"}]},
        "request_hash": f"h{i}",
        "serving_stack": "baseline",
        "shadow_stack": "candidate",
        "serving_status": 200,
        "shadow_status": 200,
        "serving_text": f"a{i}",
        "shadow_text": f"b{i}",
        "serving_latency": 0.1,
        "shadow_latency": 0.2,
        "shadow_tool_calls": [{"name": "f", "arguments": "{}"}],
    }


def _fill(url: str, n: int, t0: float) -> None:
    w = StoreWriter(url, batch=7, flush_seconds=0.01)
    w.start()
    # Submitted out of time order: reading gives time order.
    for i in reversed(range(n)):
        w.submit(_rec(t0 + i, "a" if i % 3 else "b", i))
    w.close()


def _check_read_api(url: str) -> None:
    t0 = 1_700_000_000.0
    _fill(url, 30, t0)
    with open_store(url) as st:
        allp = list(st.pairs())
        assert [p.ts for p in allp] == [t0 + i for i in range(30)]
        assert st.count() == 30 and st.segments() == {"a": 20, "b": 10}
        win = list(st.pairs(since=t0 + 10, until=t0 + 20, segment="b"))
        assert [p.request["messages"][0]["content"] for p in win] == ["q12", "q15", "q18"]
        assert st.count(since=t0 + 10, until=t0 + 20) == 10
        p = win[0]
        assert (p.serving_text, p.shadow_text, p.stream, p.both_answered) == (
            "a12",
            "b12",
            False,
            True,
        )
        assert p.shadow_tool_calls == [{"name": "f", "arguments": "{}"}]
        assert p.serving_tool_calls is None and p.serving_ttft is None
        assert len(list(st.pairs(limit=5))) == 5
        # Retention: by age, then by rows (the newest are kept).
        assert st.enforce_retention(days=(time.time() - (t0 + 4.5)) / 86400, rows=None) == 5
        assert st.enforce_retention(days=None, rows=10) == 15
        assert [p.ts for p in st.pairs()] == [t0 + i for i in range(20, 30)]


def test_sqlite_read_api_in_time_order_windows_segments_retention(tmp_path: Path) -> None:
    url = str(tmp_path / "s.sqlite")
    _check_read_api(url)
    con = SqliteStore(url).conn
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    cols = [r[1] for r in con.execute("PRAGMA table_info(shadow_pairs)")]
    assert cols == ["id", *COLUMN_NAMES]
    assert con.execute("SELECT value FROM shadow_meta").fetchone() == ("1",)


# -- PostgreSQL ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="psycopg 3 missing: pip install 'pytest-parity[shadow]'")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if initdb is None:
        pytest.skip(f"PostgreSQL server binaries not found; {PG_HINT}")
    bindir = Path(initdb).parent
    root = os.geteuid() == 0
    if root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as its own user")
    as_pg = ["runuser", "-u", "postgres", "--"] if root else []
    data = Path(tempfile.mkdtemp(prefix="parity-pg-"))
    if root:
        shutil.chown(data, "postgres")
    port = _free_port()
    run = lambda *a: subprocess.run([*as_pg, *a], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data / "db"),
            "-A",
            "trust",
            "-U",
            "parity",
            "--no-sync",
        )
        opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-o",
            opts,
            "-l",
            str(data / "log"),
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql://parity@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_pg, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


def _reset(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS shadow_pairs, shadow_meta, shadow_monitor")


def test_postgres_read_api_and_retention(postgres: str) -> None:
    _reset(postgres)
    _check_read_api(postgres)


def test_two_proxies_share_one_postgres_store(postgres: str, tmp_path: Path) -> None:
    _reset(postgres)
    with StreamServer("old") as old, StreamServer("new") as new:
        c = write_contract(
            tmp_path / "c.yaml",
            old.base_url,
            new.base_url,
            {"store": {"url": "${PARITY_PG_URL}", "batch": 5, "flush_seconds": 0.05}},
        )
        env = {"PARITY_PG_URL": postgres}
        with (
            ProxyProcess(c, "--instance", "lb-a", env=env) as a,
            ProxyProcess(c, "--instance", "lb-b", env=env) as b,
        ):

            async def load() -> None:
                async with httpx.AsyncClient(timeout=30) as h:
                    await asyncio.gather(
                        *(
                            h.post(
                                (a.url if i % 2 else b.url) + "/v1/chat/completions",
                                json={
                                    "model": "m",
                                    "messages": [{"role": "user", "content": f"q{i}"}],
                                },
                                headers={"x-parity-segment": "s1" if i < 30 else "s2"},
                            )
                            for i in range(40)
                        )
                    )

            asyncio.run(load())
            assert a.wait_for("parity_shadow_pairs_total", 20) == 20
            assert b.wait_for("parity_shadow_pairs_total", 20) == 20
            assert a.stop()[0] == 0 and b.stop()[0] == 0
    with open_store(postgres) as st:
        pairs = list(st.pairs())
        assert len(pairs) == 40 and st.segments() == {"s1": 30, "s2": 10}
        assert {p.instance for p in pairs} == {"lb-a", "lb-b"}
        assert [p.ts for p in pairs] == sorted(p.ts for p in pairs)
        assert len({p.id for p in pairs}) == 40
        for p in pairs:
            q = p.request["messages"][0]["content"]
            assert p.serving_text == f"old says: {q}" and p.shadow_text == f"new says: {q}"


# -- the drift monitor's state -----------------------------------------------------------------


def _check_monitor_state(url: str) -> None:
    """Checkpoint by the stable key (ts, id): pairs with the same time on both sides of the
    checkpoint are neither skipped nor read twice; the save is compare-and-set."""
    from pytest_parity.store import MonitorConflict, record_values

    t0 = 1_700_000_000.0
    with open_store(url) as st:
        # three pairs per second (as when several proxies write the same instant)
        st.write([record_values(_rec(t0 + i // 3, "a", i)) for i in range(12)])
        keys = [(p.ts, p.id) for p in st.pairs()]
        assert st.last_key() == keys[-1] and st.last_key(until=t0 + 2) == keys[5]
        cut = keys[4]  # the middle pair of the second second
        after = [(p.ts, p.id) for p in st.pairs(after=cut)]
        assert after == keys[5:] and st.count(after=cut) == 7
        assert st.monitor_load("t").checkpoint is None
        st.monitor_save("t", None, cut, {"a": {"n": 5}})
        got = st.monitor_load("t")
        assert got.checkpoint == cut and got.states == {"a": {"n": 5}}
        with pytest.raises(MonitorConflict, match="checkpoint moved"):
            st.monitor_save("t", None, keys[-1], {"a": {"n": 12}})  # a second run, stale
        assert st.monitor_load("t").states == {"a": {"n": 5}}
        st.monitor_save("t", cut, keys[-1], {"a": {"n": 12}, "b": {"n": 0}})
        assert st.monitor_load("t").checkpoint == keys[-1]
        assert st.monitor_load("other").checkpoint is None
        st.monitor_reset("t")
        assert st.monitor_load("t").checkpoint is None and st.monitor_load("t").states == {}
        # the client's own failures can be left out
        bad = _rec(t0 + 20, "a", 99)
        bad["serving_error"] = "disconnect"
        st.write([record_values(bad)])
        assert st.count() == 13 and st.count(client_errors=False) == 12


def test_sqlite_monitor_state_checkpoint_and_compare_and_set(tmp_path: Path) -> None:
    _check_monitor_state(str(tmp_path / "m.sqlite"))


def test_postgres_monitor_state_checkpoint_and_compare_and_set(postgres: str) -> None:
    _reset(postgres)
    _check_monitor_state(postgres)
