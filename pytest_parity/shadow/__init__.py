"""Live shadow traffic: a tee proxy in front of the serving stack (``parity-shadow``).

A service beside the pytest plugin (the plugin never imports it): clients call the proxy instead
of the serving stack; a sampled share of their requests is mirrored to the shadow stack, whose
answers are dropped after the pair is stored and measured. Modules: :mod:`.config` (the
contract's ``shadow:`` block), :mod:`.proxy`, :mod:`.answers` (reading answers), :mod:`.writer`
(batched writes into :mod:`pytest_parity.store`, the sqlite / PostgreSQL store the drift gate
reads), :mod:`.metrics` (Prometheus).
"""

from __future__ import annotations

from pytest_parity.store import StoredPair, open_store

__all__ = ["StoredPair", "open_store"]
