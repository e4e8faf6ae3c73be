"""The shadow store: where shadow pairs live (sqlite or PostgreSQL), below every layer reading it.

Written by the shadow proxy (:mod:`pytest_parity.shadow`, a service beside the plugin) and read by
the drift gate (``source: shadow``) and the monitor, so it sits at the bottom of the layers with
no import from the rest of the package. :mod:`.pairs` holds the schema and the read API.
"""

from __future__ import annotations

from pytest_parity.store.pairs import (
    COLUMN_NAMES,
    MonitorConflict,
    MonitorState,
    Store,
    StoredPair,
    open_store,
    record_values,
)

__all__ = [
    "COLUMN_NAMES",
    "MonitorConflict",
    "MonitorState",
    "Store",
    "StoredPair",
    "open_store",
    "record_values",
]
