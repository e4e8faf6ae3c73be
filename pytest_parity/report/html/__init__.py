"""The HTML parts of the reports: the standalone page, its sections, per-task blocks, SVG plots."""
