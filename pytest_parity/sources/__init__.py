"""Task sources: where a task's items come from (golden sets, lm-evaluation-harness...)."""
