"""lm-eval's requests sent through the project's endpoint layer.

lm-eval builds every request itself (prompts, few-shot, chat templates, stop strings) and runs
in worker threads, under event loops of its own. :class:`EndpointBridge` takes each payload it
builds and sends it through one of the run's :class:`~pytest_parity.endpoints.http.Endpoint`
objects, which live in the runner's event loop: so the response cache, ``--parity-record``,
``kind: replay`` baselines, the A/A pass and ``--parity-max-time`` apply to lm-eval tasks
exactly as to golden sets. Retries, timeouts and the circuit breaker are the endpoint's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pytest_parity.endpoints.cache import canonical_hash

if TYPE_CHECKING:
    from pytest_parity.contract.spec import EndpointSpec
    from pytest_parity.endpoints.http import Endpoint, Response

__all__ = ["EndpointBridge", "standalone_bridge"]


class EndpointBridge:
    """One stack's endpoint, reachable from lm-eval's threads (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        loop: asyncio.AbstractEventLoop,
        *,
        task: str,
        deadline: float | None = None,
        on_done: Callable[[Response], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.loop = loop
        self.task = task
        self.deadline = deadline
        self.on_done = on_done
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None
        self.out_of_time = False

    def request(self, payload: Mapping[str, Any]) -> Any:
        """The endpoint request for one lm-eval payload; its id is a digest of the payload, so
        a recording pairs it with the same question asked again."""
        from pytest_parity.endpoints.http import Request

        asked = {k: v for k, v in payload.items() if k != "model"}
        return Request(item_id=f"{self.task}/lm-eval:{canonical_hash(asked)[:20]}", body=asked)

    def complete(self, payload: Mapping[str, Any]) -> Response:
        """From a thread without an event loop (lm-eval's one-request-at-a-time path)."""
        return asyncio.run_coroutine_threadsafe(self._send(payload), self.loop).result()

    async def acomplete(self, payload: Mapping[str, Any]) -> Response:
        """From lm-eval's own event loop, in its worker thread."""
        future = asyncio.run_coroutine_threadsafe(self._send(payload), self.loop)
        return await asyncio.wrap_future(future)

    async def _send(self, payload: Mapping[str, Any]) -> Response:
        from pytest_parity.endpoints.http import failure

        self.sent += 1
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.out_of_time = True
            response = failure(
                f"{self.endpoint.spec.role}: not sent: the run's time budget (--parity-max-time)"
                " ran out",
                "timeout",
            )
        else:
            response = await self.endpoint.complete(self.request(payload))
        if response.error is not None:
            self.failed += 1
            self.last_error = response.error
        if self.on_done is not None:
            self.on_done(response)
        return response


@contextlib.contextmanager
def standalone_bridge(
    spec: EndpointSpec, *, task: str = "lm-eval", cache: Any = None
) -> Iterator[EndpointBridge]:
    """A bridge with an event loop of its own in a background thread (outside a gate run:
    ``build_model(..., bridge=...)`` in a script or a test)."""
    from pytest_parity.endpoints.http import open_endpoint

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="parity-bridge", daemon=True)
    thread.start()

    async def opened() -> Endpoint:
        return open_endpoint(spec, cache=cache)

    endpoint = asyncio.run_coroutine_threadsafe(opened(), loop).result()
    try:
        yield EndpointBridge(endpoint, loop, task=task)
    finally:
        asyncio.run_coroutine_threadsafe(endpoint.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
