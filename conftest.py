"""Project-wide test configuration: pytester runs the plugin as a user would."""

from __future__ import annotations

collect_ignore = ["example_suite/live/models"]
