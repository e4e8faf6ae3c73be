"""The facts a customer signs, read once from a RunResult and shown the same in every report.

The HTML first page, the Markdown summary and the pytest-html summary all render
:func:`sign_off`: the overall verdict, the reasons grouped by status (FAIL, ERROR, INCONCLUSIVE,
PASS) in plain words, the items each inconclusive task needs and whether its data holds them,
the A/A flip rate beside old-vs-new, the pass-chance figure with what it covers, and the lock
digest. The reasons are built from the tasks' own checks and the run's Holm-adjusted p-values,
so every sentence says which hypothesis its p tests instead of naming the adjustment alone.

Pure: no I/O, plain strings out (escaping is the renderer's job).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_parity.report.numfmt import count, p_text, percent, points, prose

ORDER = ("FAIL", "ERROR", "INCONCLUSIVE", "PASS")
GROUP_TITLES = {
    "FAIL": "Fails the run",
    "ERROR": "Could not be judged",
    "INCONCLUSIVE": "Not decided yet",
    "PASS": "Passed",
}
# What each check's one-sided p-value tests, in words a reader can weigh.
P_TESTS = {
    "delta": "is the new stack worse than the tolerance allows?",
    "failure_modes": "does a failure category grow under the new stack?",
    "error_direction": "do cautious answers turn into confident wrong ones more than the reverse?",
    "calibration": "is the new stack's confidence less calibrated than the old one's?",
    "tone": "did tone or length move beyond the contract's bounds?",
}
# Below this chance that an equal migration passes every delta check, the contract is
# underpowered: a good migration would often be reported as not proven.
UNDERPOWERED = 0.8
DATA_NAMES = {"golden": "golden set", "lm-eval": "benchmark", "traffic": "traffic capture"}
PASS_CHANCE_NOTE = (
    "the chance that a migration with no real change passes every task's delta check at these"
    " item counts, computed from the flip rates observed in this run (the failure-mode and"
    " direction checks are not in this figure)"
)


@dataclass(frozen=True)
class Reason:
    status: str  # the group it belongs to
    task: str  # "" for a run-level reason
    text: str
    tasks: tuple[str, ...] = ()  # a reason standing for several tasks (passes collapsed)

    def names(self) -> list[str]:
        return [self.task] if self.task else list(self.tasks)


# Past this many plain passes the first page lists them on one line: their numbers are in the
# table, and twenty bullets would push the sign-off block off the page.
MAX_PASS_LINES = 3


@dataclass(frozen=True)
class Needed:
    """An inconclusive task: the items that would settle it and whether its data holds them."""

    task: str
    needed: int
    ran: int
    available: int
    data: str  # "golden set", "benchmark", ...

    @property
    def enough(self) -> bool:
        return self.available >= self.needed

    def short(self) -> str:
        """The headline form: ``mmlu needs about 2,400 items; its benchmark holds 1,000``."""
        enough = "" if self.enough else " only"
        return (
            f"{self.task} needs about {count(self.needed)} paired items (its {self.data}"
            f" holds{enough} {count(self.available)})"
        )

    def sentence(self) -> str:
        more = self.needed - self.ran
        head = f"{self.task} needs about {count(self.needed)} paired items"
        if more > 0:
            head += f" ({count(more)} more than the {count(self.ran)} run)"
        if self.enough:
            return head + f"; its {self.data} holds {count(self.available)}: run them all"
        if self.data == "benchmark":
            return (
                head + f"; the benchmark holds only {count(self.available)}, so it cannot settle"
                " this at this tolerance: add a golden set of your own, or agree a wider one"
            )
        return (
            head + f"; its {self.data} holds only {count(self.available)}:"
            f" add about {count(self.needed - self.available)} items"
        )


@dataclass(frozen=True)
class NoiseFloor:
    """One task's A/A flip rate (baseline against itself) beside old-vs-new."""

    task: str
    aa_rate: float
    aa_flips: int
    aa_n: int
    rate: float | None  # old vs new

    def sentence(self) -> str:
        old_new = "n/a" if self.rate is None else percent(self.rate)
        text = (
            f"{self.task}: old vs new flips {old_new} of items; old vs old (A/A)"
            f" {percent(self.aa_rate)} ({count(self.aa_flips)} of {count(self.aa_n)})"
        )
        if self.rate is not None:
            text += (
                ": the stacks differ no more than the baseline differs from itself"
                if self.rate <= self.aa_rate
                else ": more than the baseline's own noise"
            )
        return text


@dataclass(frozen=True)
class SignOff:
    overall: str
    groups: list[tuple[str, list[Reason]]]
    needed: list[Needed] = field(default_factory=list)
    noise: list[NoiseFloor] = field(default_factory=list)
    pass_chance: float | None = None
    description: str = ""
    contract_digest: str = ""
    lock_digest: str = ""

    @property
    def underpowered(self) -> bool:
        return self.pass_chance is not None and self.pass_chance < UNDERPOWERED

    def pass_chance_text(self) -> str:
        if self.pass_chance is None:
            return ""
        return f"{percent(self.pass_chance, 0)}: {PASS_CHANCE_NOTE}"

    def warning(self) -> str:
        if not self.underpowered or self.pass_chance is None:
            return ""
        return (
            "This contract is underpowered: a migration with no real change would pass every"
            f" delta check only {percent(self.pass_chance, 0)} of the time at these item counts."
            " Add items (see the items needed) or agree a wider tolerance before signing."
        )

    def headline(self) -> str:
        """One line under the verdict: which tasks fail, cannot be judged, are open (with the
        items each needs and whether its data holds them) and pass."""
        parts = []
        for status, reasons in self.groups:
            names = list(dict.fromkeys(n for r in reasons for n in r.names()))
            if status == "INCONCLUSIVE":
                settled = {n.task for n in self.needed}
                shown = [n.short() for n in self.needed]
                shown += [n for n in names if n not in settled]
            elif status == "PASS" and len(names) > 5:
                shown = [f"{len(names)} tasks"]
            else:
                shown = names
            if shown:
                parts.append(f"{GROUP_TITLES[status]}: {'; '.join(shown)}")
        return " · ".join(parts)


def group_title(status: str, reasons: list[Reason]) -> str:
    """``Fails the run (1 task, 3 checks)``: how many tasks a group holds, and its reasons."""
    tasks = len({n for r in reasons for n in r.names()})
    text = f"{GROUP_TITLES[status]} ("
    text += f"{tasks} task" + ("s" if tasks != 1 else "") if tasks else ""
    if len(reasons) > max(tasks, 1) or not tasks:
        text += (", " if tasks else "") + f"{len(reasons)} reason" + ("s" * (len(reasons) != 1))
    return text + ")"


def _mapping(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _num(m: Mapping[str, Any], key: str) -> float | None:
    from pytest_parity.report.numfmt import finite

    return finite(m.get(key))


def _checks(t: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    from pytest_parity.report import checks as registered

    checks = _mapping(t.get("checks"))
    return [(str(k), _mapping(checks[k])) for k in registered.ordered(checks)]


def _title(name: str) -> str:
    from pytest_parity.report import checks as registered

    return str(registered.title(name))


def _first_reason(c: Mapping[str, Any]) -> str:
    return prose(next((str(r) for r in _list(c.get("reasons")) if r), ""))


def _tests(name: str) -> str:
    return P_TESTS.get(name.split(":", 1)[0], "does this check's alarm hold?")


def _delta_words(t: Mapping[str, Any], nums: Mapping[str, Any]) -> str:
    delta, lo, hi = (_num(nums, k) for k in ("delta", "ci_low", "ci_high"))
    tol = _num(t, "tolerance")
    if delta is None:
        return ""
    text = f"new minus old {points(delta)} pts"
    if lo is not None and hi is not None:
        text += f" (interval {points(lo)} to {points(hi)})"
    if tol is not None:
        text += f", tolerance {points(-tol)} pts"
    return text


def _fail_reason(
    t: Mapping[str, Any], name: str, c: Mapping[str, Any], q: float | None, n_alarms: int
) -> Reason:
    task = str(t.get("task", "?"))
    nums = _mapping(c.get("numbers"))
    what = _delta_words(t, nums) if name == "delta" else _first_reason(c)
    alpha = _num(t, "alpha") or 0.05
    head = f"{task} · {_title(name)}: {what}" if what else f"{task} · {_title(name)}"
    if q is None:
        if nums.get("policy_alarm"):
            return Reason(
                "FAIL",
                task,
                head + ". A rule of the contract (a failure the old stack never"
                " showed), not a statistical test: no p-value.",
            )
        return Reason("FAIL", task, head + ".")
    if q < alpha:
        return Reason(
            "FAIL",
            task,
            head + f". The test asks “{_tests(name)}”: {p_text(q)} with all {n_alarms} checks of"
            f" the run counted (Holm), below alpha {alpha:g}: it holds.",
        )
    return Reason(
        "INCONCLUSIVE",
        task,
        head + f". This check failed on its own, but the test (“{_tests(name)}”) gives"
        f" {p_text(q)} once all {n_alarms} checks of the run are counted (Holm), not below alpha"
        f" {alpha:g}: a result this strong turns up by chance among that many checks, so it does"
        " not fail the run. More items would decide it.",
    )


def _needed(t: Mapping[str, Any], nums: Mapping[str, Any]) -> Needed | None:
    need = _num(nums, "items_needed")
    if need is None:
        return None
    ran = int(_num(t, "n_paired") or 0)
    available = int(_num(t, "n_items") or 0)
    early = _mapping(t.get("early_stop"))
    if _num(early, "available") is not None:
        available = int(_num(early, "available") or 0)
    data = DATA_NAMES.get(str(t.get("source", "")), "data")
    return Needed(str(t.get("task", "?")), int(need), ran, available, data)


def _pass_reason(t: Mapping[str, Any]) -> Reason:
    task = str(t.get("task", "?"))
    nums = _mapping(_mapping(_mapping(t.get("checks")).get("delta")).get("numbers"))
    words = _delta_words(t, nums)
    others = [_title(n) for n, c in _checks(t) if n != "delta" and c.get("status") == "PASS"]
    text = f"{task}: " + (words or "every check passed")
    if others:
        text += "; " + ", ".join(o[:1].lower() + o[1:] for o in others)
    if nums.get("warn") is True:
        text += ". Warning: a real regression, inside the tolerance (the whole interval is below 0)"
    return Reason("PASS", task, text)


def sign_off(run: Mapping[str, Any]) -> SignOff:
    """The sign-off facts of a run (see the module docstring)."""
    contract = _mapping(run.get("contract"))
    tasks = [t for t in _list(run.get("tasks")) if isinstance(t, Mapping)]
    holm = _mapping(run.get("holm"))
    n_alarms = len(holm)
    groups: dict[str, list[Reason]] = {s: [] for s in ORDER}
    needed: list[Needed] = []
    noise: list[NoiseFloor] = []
    for t in tasks:
        task = str(t.get("task", "?"))
        if t.get("verdict") == "ERROR" or t.get("error"):
            why = str(t.get("error") or "") or "; ".join(
                f"{n}: {_first_reason(c)}" for n, c in _checks(t) if c.get("status") == "ERROR"
            )
            groups["ERROR"].append(Reason("ERROR", task, f"{task}: {why or 'not evaluated'}"))
            continue
        for name, c in _checks(t):
            status = c.get("status")
            nums = _mapping(c.get("numbers"))
            if status == "FAIL":
                q = _num(holm, f"{task}/{name}")
                reason = _fail_reason(t, name, c, q, n_alarms)
                groups[reason.status].append(reason)
            elif status in ("INCONCLUSIVE", "ERROR"):
                settle = _needed(t, nums) if name == "delta" else None
                words = _delta_words(t, nums) if name == "delta" else _first_reason(c)
                text = f"{task} · {_title(name)}: {words}"
                if settle is not None:
                    needed.append(settle)
                    text += ". " + settle.sentence()
                else:
                    later = [prose(r) for r in _list(c.get("reasons"))[1:2] if r]
                    text += "".join(f". {r}" for r in later)
                groups["INCONCLUSIVE"].append(Reason("INCONCLUSIVE", task, text))
        if t.get("verdict") == "PASS":
            groups["PASS"].append(_pass_reason(t))
        aa = _mapping(t.get("aa"))
        rate = _num(aa, "flip_rate")
        if rate is not None:
            flips = _num(_mapping(_mapping(_mapping(t.get("checks")).get("delta")).get("numbers")),
                         "flip_rate")  # fmt: skip
            noise.append(
                NoiseFloor(task, rate, int(_num(aa, "flips") or 0), int(_num(aa, "n") or 0), flips)
            )
    ran = {str(t.get("task")) for t in tasks}
    missing = [
        str(_mapping(ct).get("name"))
        for ct in _list(contract.get("tasks"))
        if str(_mapping(ct).get("name")) not in ran
    ]
    if missing and tasks:
        groups["INCONCLUSIVE"].append(
            Reason(
                "INCONCLUSIVE",
                "",
                f"not run: {', '.join(missing)} (every task must pass for an overall PASS)",
            )
        )
    plain = [r for r in groups["PASS"] if "Warning:" not in r.text]
    if len(plain) > MAX_PASS_LINES:
        names = tuple(r.task for r in plain)
        collapsed = Reason(
            "PASS",
            "",
            f"{len(names)} tasks passed every check, each inside its tolerance (their numbers"
            f" are in the table below): {', '.join(names)}",
            names,
        )
        groups["PASS"] = [collapsed, *(r for r in groups["PASS"] if r not in plain)]
    lock = _mapping(run.get("lock"))
    return SignOff(
        overall=str(run.get("overall", "SKIP")),
        groups=[(s, groups[s]) for s in ORDER if groups[s]],
        needed=needed,
        noise=noise,
        pass_chance=_num(run, "pass_probability"),
        description=str(contract.get("description") or ""),
        contract_digest=str(contract.get("digest") or ""),
        lock_digest=str(lock.get("digest") or ""),
    )


def task_facts(task: Mapping[str, Any]) -> list[str]:
    """One task's share of the sign-off facts, for places that show a task alone (the
    pytest-html extras of its tests): the items that would settle it, its A/A noise floor."""
    facts = sign_off({"tasks": [task], "contract": {}, "holm": {}})
    out = [n.sentence() for n in facts.needed]
    out += [n.sentence() for n in facts.noise]
    return out
