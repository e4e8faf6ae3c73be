"""A candidate that accepts connections and never answers ends its task as an ERROR within
about (1 + max_retries) x timeout, whatever the item count."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from servers import FakeServer, Faults


class Hang:
    """Accepts every connection on 127.0.0.1, reads what comes, never writes a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self.conns.append(conn)  # held open, never answered

    def __enter__(self) -> Hang:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.mark.parametrize("concurrency", [16, 1])
def test_a_hung_candidate_ends_the_task_as_error_in_seconds(
    pytester: pytest.Pytester, concurrency: int
) -> None:
    # At max_concurrency 1 the window's 16 items queue their attempts behind one another:
    # counting requests that exhausted their attempts took 16 x (1 + retries) x timeout (~50 s
    # here; hours at the defaults). Nothing heard for (1 + retries) x timeout of asking is a stall.
    n, timeout, retries = 200, 1.0, 2
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?", "reference": str(i + 1)})
        for i in range(n)
    ]
    Path(pytester.path / "golden.jsonl").write_text("\n".join(lines) + "\n")
    with FakeServer() as old, Hang() as hung:
        path = pytester.makefile(
            ".yaml",
            contract=f"""
            baseline:  {{kind: openai, base_url: "{old.base_url}", model: m}}
            candidate:
              kind: openai
              base_url: "{hung.base_url}"
              model: m
              timeout: {timeout}
              max_retries: {retries}
              max_concurrency: {concurrency}
            defaults: {{max_error_rate: 0.2}}
            tasks:
              - {{name: sums, path: golden.jsonl, scorer: numeric}}
            """,
        )
        started = time.monotonic()
        # the preflight would stop a server that hangs from the start (exit 4, tested in
        # test_preflight.py); this is the endpoint that stalls once the task is running
        result = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "--parity-no-preflight"
        )
        took = time.monotonic() - started
    assert result.parseoutcomes().get("errors") == 3, result.stdout.str()
    out = result.stdout.str()
    # Stopped because the endpoint stalled, not after spending the error budget item by item.
    assert "candidate endpoint" in out and "stalled: " in out
    assert "more than the task allows" not in out
    assert hung.accepted < n  # the first window's attempts, not one per item
    # (1 + retries) x timeout plus backoff (<= 1.5 s) and slack for a loaded machine.
    assert took < (1 + retries) * timeout + 10, took


def test_timeouts_after_an_idle_pause_are_not_a_stall() -> None:
    # A wave of attempts that all time out at once after the endpoint sat idle (between
    # batches, tasks or judgements) is one timeout of asking, not (1 + retries) x timeout:
    # their retries are answered and the endpoint is not marked stalled.
    import asyncio

    from pytest_parity.contract.spec import EndpointSpec
    from pytest_parity.endpoints.http import Request, open_endpoint

    with FakeServer(answer=lambda body: "ok") as srv:
        spec = EndpointSpec("candidate", "openai", srv.base_url, "m", timeout=0.3, max_retries=1)

        async def go() -> list[bool]:
            ep = open_endpoint(spec)
            try:
                ask = lambda i: ep.complete(  # noqa: E731
                    Request(f"q{i}", messages=({"role": "user", "content": f"x{i}"},))
                )
                assert (await ask(0)).ok
                await asyncio.sleep(1.0)  # idle: more than (1 + retries) x timeout = 0.6 s
                # the next wave's first attempts all time out together; each retry is answered
                srv.faults = Faults(rate=1.0, kinds=("timeout",), max_per_request=1, hang_s=0.5)
                results = await asyncio.gather(*(ask(i) for i in range(1, 5)))
                assert ep.stalled is None, ep.stalled
                assert all(r.attempts == 2 for r in results)
                return [r.ok for r in results]
            finally:
                await ep.aclose()

        assert asyncio.run(go()) == [True] * 4
