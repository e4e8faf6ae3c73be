"""Standard benchmarks through EleutherAI's lm-evaluation-harness, paired per document.

:mod:`.bridge` runs a task on both stacks and pairs the results; :mod:`.models` holds the
lm-eval HTTP model subclasses, :mod:`.options` the contract's ``lm_eval`` options, :mod:`.tasks`
task resolution, :mod:`.pairing` the per-document pairing and :mod:`.tokenizer` the servers'
tokenizers. ``lm_eval`` itself is imported only inside functions: importing it costs seconds.
"""
