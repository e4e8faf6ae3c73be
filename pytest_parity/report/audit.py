"""The coverage audit of a contract: which kinds of eval it runs, which failure modes it checks.

The founding document names four kinds of eval a migration needs (standard benchmarks, a workload
golden set, production replay, live shadow traffic) and four failure modes that recur in
quantization and runtime swaps (tone drift, calibration drift, long-context and tool-use
regressions). The audit reads the contract (and, for golden sets, their items) and says for each
whether the contract covers it, with a one-line hint where it does not. Nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract, TaskSpec

SMALL_GOLDEN_SET = 200  # below this a 1.5-point tolerance can rarely be shown (see the plan)

__all__ = ["AuditLine", "audit", "audit_lines"]


@dataclass(frozen=True)
class AuditLine:
    area: str  # "kind of eval" | "failure mode" | "golden set"
    name: str
    covered: bool
    tasks: tuple[str, ...]  # the tasks that cover it
    hint: str  # what to add when it is not covered, or a warning when it is

    def text(self) -> str:
        if self.area == "golden set":
            return f"golden set {self.name}: {self.hint}"
        mark = "covered" if self.covered else "MISSING"
        by = f" by {', '.join(self.tasks)}" if self.tasks else ""
        return f"{self.area}: {self.name}: {mark}{by}" + (f" ({self.hint})" if self.hint else "")


def _tools(task: TaskSpec) -> bool:
    return task.source == "tool-use" or bool(task.params.get("tools"))


def _long_context(task: TaskSpec) -> bool:
    buckets = task.checks.get("buckets") or {}
    return task.source == "long-context" or "context" in str(buckets.get("by", ""))


EVAL_KINDS: tuple[tuple[str, str, str], ...] = (
    ("standard benchmarks", "lm-eval", "add a task with source: lm-eval (e.g. gsm8k, mmlu)"),
    (
        "workload golden set",
        "golden",
        "add a task with source: golden: your own prompts and references, scored by a rubric",
    ),
    (
        "production replay",
        "traffic",
        "add a task with source: traffic over a captured slice of recent production requests",
    ),
    (
        "live shadow traffic",
        "shadow",
        "run parity-shadow in front of the serving stack and gate its pairs with source: shadow",
    ),
)


def audit(contract: Contract) -> list[AuditLine]:
    """Every line of the audit, kinds of eval first, then failure modes, then golden-set notes."""
    lines: list[AuditLine] = []
    for name, source, hint in EVAL_KINDS:
        tasks = tuple(t.name for t in contract.tasks if t.source == source)
        lines.append(AuditLine("kind of eval", name, bool(tasks), tasks, "" if tasks else hint))
    modes = (
        ("tone drift", lambda t: "tone" in t.checks, "turn on checks: {tone: {}} on a task with "
         "open-ended, customer-facing prompts"),
        ("calibration drift", lambda t: "calibration" in t.checks, "turn on checks: "
         "{calibration: {}} where the product uses confidence (routing, 'I don't know')"),
        ("long context", _long_context, "add source: long-context at your product's lengths, "
         "or checks: {buckets: {by: context_tokens}} on a task with long prompts"),
        ("tool use", _tools, "add source: tool-use with multi-step episodes of your tools"),
    )  # fmt: skip
    for name, test, hint in modes:
        tasks = tuple(t.name for t in contract.tasks if test(t))
        lines.append(AuditLine("failure mode", name, bool(tasks), tasks, "" if tasks else hint))
    lines.extend(_golden_notes(contract))
    return lines


def _golden_notes(contract: Contract) -> list[AuditLine]:
    from pytest_parity import registry

    out: list[AuditLine] = []
    for task in contract.tasks:
        if task.source != "golden":
            continue
        source = registry.sources.get("golden")
        n, repeated = source.count(task), source.repeated_prompts(task)
        if n < SMALL_GOLDEN_SET:
            out.append(
                AuditLine(
                    "golden set",
                    task.name,
                    False,
                    (task.name,),
                    f"{n} items, fewer than {SMALL_GOLDEN_SET}: a "
                    f"{100 * task.tolerance:g}-point tolerance is rarely decided at this size"
                    " (an INCONCLUSIVE verdict says how many it needs)",
                )
            )
        if repeated:
            out.append(
                AuditLine(
                    "golden set",
                    task.name,
                    False,
                    (task.name,),
                    f"{repeated} duplicated prompt(s): repeated items count twice without adding"
                    " evidence; remove them or declare cluster_key",
                )
            )
    return out


def audit_lines(contract: Contract) -> list[str]:
    lines = audit(contract)
    missing = sum(1 for a in lines if not a.covered and a.area != "golden set")
    notes = sum(1 for a in lines if a.area == "golden set")
    head = f"coverage audit of {contract.path.name}: " + (
        f"{missing} of 8 kinds of eval and failure modes not covered"
        if missing
        else "every kind of eval and failure mode covered"
    )
    if notes:
        head += f", {notes} golden-set warning{'s' if notes != 1 else ''}"
    return [head, *(f"  {a.text()}" for a in lines)]
