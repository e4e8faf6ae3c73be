"""The checks of parity: each takes a task's paired records and returns a CheckResult."""
