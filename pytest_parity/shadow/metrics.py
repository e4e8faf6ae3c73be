"""The proxy's Prometheus metrics (``prometheus_client``, one registry per proxy).

Labels: ``role`` (serving / shadow), ``stack`` (the endpoint's name in the contract), ``segment``
(bounded by ``shadow.segments.max``: later segments count as ``other``), and for errors a fixed
``category`` set, for finish reasons a fixed set plus ``other``. Label children are cached, so an
observation costs a dict lookup and the histogram's own update.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

ERROR_CATEGORIES = (
    "http_4xx",
    "http_5xx",
    "connect",
    "timeout",
    "disconnect",
    "invalid_response",
)
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, max_segments: int = 50) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the exposition and say little
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        sl = ("role", "stack", "segment")
        self.requests = Counter(
            "parity_shadow_requests", "Requests answered per stack and segment", sl, registry=r
        )
        self.errors = Counter(
            "parity_shadow_errors", "Failed requests by category", (*sl, "category"), registry=r
        )
        self.latency = Histogram(
            "parity_shadow_latency_seconds",
            "Request to last byte of the answer",
            sl,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "parity_shadow_ttft_seconds",
            "Request to first streamed chunk",
            sl,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "parity_shadow_tokens", "Tokens reported in usage", (*sl, "kind"), registry=r
        )
        self.finish = Counter(
            "parity_shadow_finish_reasons", "Answers per finish reason", (*sl, "reason"), registry=r
        )
        self.passthrough = Counter(
            "parity_shadow_passthrough_requests",
            "Requests on paths the proxy only forwards (no shadow, no pair)",
            ("stack",),
            registry=r,
        )
        self.sampled = Counter(
            "parity_shadow_sampled",
            "Requests sampled for the shadow stack",
            ("segment",),
            registry=r,
        )
        self.dropped = Counter(
            "parity_shadow_dropped",
            "Sampled requests never sent to the shadow stack",
            ("segment", "reason"),
            registry=r,
        )
        self.queue_depth = Gauge(
            "parity_shadow_queue_depth", "Shadow requests waiting to be sent", registry=r
        )
        self.in_flight = Gauge(
            "parity_shadow_in_flight", "Shadow requests being answered", registry=r
        )
        self.pairs = Counter(
            "parity_shadow_pairs", "Pairs handed to the store", ("segment",), registry=r
        )
        self.stored = Counter("parity_shadow_pairs_stored", "Pairs written", registry=r)
        self.store_errors = Counter(
            "parity_shadow_store_errors", "Pairs lost to store failures", registry=r
        )
        self.store_dropped = Counter(
            "parity_shadow_store_dropped", "Pairs dropped: the store fell behind", registry=r
        )
        self.max_segments = max_segments
        self._segments: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}

    def segment(self, name: str) -> str:
        """The label for a segment: its name while fewer than max are known, else ``other``."""
        if name in self._segments:
            return name
        if len(self._segments) < self.max_segments:
            self._segments.add(name)
            return name
        return "other"

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def observe(
        self,
        role: str,
        stack: str,
        segment: str,
        *,
        error: str | None,
        latency: float | None,
        ttft: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        finish: str | None,
    ) -> None:
        self._child(self.requests, role, stack, segment).inc()
        if error is not None:
            self._child(self.errors, role, stack, segment, error).inc()
        if latency is not None:
            self._child(self.latency, role, stack, segment).observe(latency)
        if ttft is not None:
            self._child(self.ttft, role, stack, segment).observe(ttft)
        if prompt_tokens:
            self._child(self.tokens, role, stack, segment, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self._child(self.tokens, role, stack, segment, "completion").inc(completion_tokens)
        if finish is not None:
            self._child(self.finish, role, stack, segment, finish).inc()

    def count(self, metric: Any, *labels: str, by: float = 1.0) -> None:
        self._child(metric, *labels).inc(by)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
