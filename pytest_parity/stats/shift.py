"""Why it drifted: did the inputs change? Two-sample tests of request features, now against a
reference window (issue 19 item 4).

Each request (the body a client sent: OpenAI chat ``messages`` or completions ``prompt``) is
reduced to a few features by :func:`features_of`: prompt length in characters and in tokens,
number of turns, tool use, the prompt's dominant script (a stand-in for its language), the
requested model. A mapping without ``messages`` / ``prompt`` is taken as features already (any
``str`` / ``bool`` value is a category, a number is numeric), so a caller can add its own (the
segment mix of a whole task has its own test, :func:`segment_mix`, below).

* Numeric features: two-sample Kolmogorov-Smirnov (any change of the distribution), effect size
  Cliff's delta = P(current > reference) - P(current < reference), in [-1, 1], with its sign:
  +0.3 means the prompts got longer.
* Categorical features: the G-test (likelihood-ratio chi-square) of the 2 x k table, effect size
  Cramer's V in [0, 1]. Categories beyond the 20 most common are pooled as ``(other)``.
* Holm's adjustment across the features of one call. A feature is ``shifted`` when its Holm
  p-value is below ``alpha`` AND its effect is at least ``min_effect`` (0.1: "small" for both
  measures): thousands of requests make a negligible change significant, and an alert should not
  say "the inputs changed" because prompts grew by two characters.

* The segment mix (:func:`segment_mix`): the share of traffic per segment, reference window against
  the current one, by Pearson's chi-square test of homogeneity of the 2 x k table of counts,
  effect size Cramer's V = sqrt(X^2 / N). Merging rule (Cochran's): a segment whose smaller
  expected count, (its pooled count) x min(n_ref, n_cur) / N, is below 5 is merged into
  ``(other)``, as is every segment beyond the 20 most common; while ``(other)`` is itself below
  5 the smallest kept segment joins it. Fewer than two columns left: no test. The shares before
  and after are those of every segment (unmerged), the largest changes first. Passed to
  :func:`input_shift` as ``mix=``, it is one more row (``segment_mix``) in the same Holm family,
  under the same ``shifted`` rule (Holm p below ``alpha`` and V at least ``min_effect``).

The tests treat requests as independent draws; a window full of one client's retries is not, and
its p-values are too small. The token count is a tokenizer-free estimate (runs of letters, digits,
or single other characters, and each CJK character), not the model's tokenizer.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pytest_parity.stats.multiplicity import holm

__all__ = [
    "MIX",
    "MixResult",
    "ShiftResult",
    "features_of",
    "input_shift",
    "mix_alone",
    "mix_changes_text",
    "segment_mix",
]

MAX_CATEGORIES = 20
OTHER = "(other)"
MIN_EXPECTED = 5.0  # the segment-mix test's smallest expected count per cell (Cochran)
MIX = "segment_mix"  # the feature name of the segment-mix row in input_shift's results
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)
_SCRIPT_SAMPLE = 2000  # characters of a prompt whose letters decide its script


@dataclass(frozen=True)
class ShiftResult:
    feature: str
    test: str  # "ks" or "g-test"
    statistic: float  # KS distance D, or the G statistic
    p_value: float  # the test's own p-value
    effect_size: float  # Cliff's delta (numeric, signed) or Cramer's V (categorical)
    reference_summary: dict[str, Any]
    current_summary: dict[str, Any]
    shifted: bool
    p_holm: float = 1.0  # Holm-adjusted across the features of the call
    effect: str = ""  # the effect measure's name
    description: str = field(default="")  # one plain sentence
    changes: list[dict[str, Any]] = field(default_factory=list)  # segment mix: share changes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return ""


def script_of(text: str) -> str:
    """The dominant Unicode script of the letters of ``text`` (first 2,000 characters): Latin,
    Cyrillic, Greek, Arabic, Hebrew, Devanagari, Han, Hiragana/Katakana, Hangul, Thai, ...;
    ``none`` without letters."""
    counts: Counter[str] = Counter()
    for ch in text[:_SCRIPT_SAMPLE]:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        word = name.split(" ", 1)[0] if name else "unknown"
        if word == "CJK":
            word = "HAN"
        elif word in ("HIRAGANA", "KATAKANA"):
            word = "KANA"
        counts[word] += 1
    if not counts:
        return "none"
    return counts.most_common(1)[0][0].lower()


def _tokens(text: str) -> int:
    n = 0
    for tok in _TOKEN.findall(text):
        # ideographs and kana carry about a token each; a Latin word about one per 4 letters
        if len(tok) > 1 and unicodedata.name(tok[0], "").startswith(("CJK", "HIRAGANA", "KATA")):
            n += len(tok)
        else:
            n += max(1, (len(tok) + 3) // 4) if tok[0].isalpha() else 1
    return n


def features_of(request: Mapping[str, Any]) -> dict[str, object]:
    """The features of one request body (pure: no I/O). A mapping that is neither a chat nor a
    completions request is returned as it is (its values are the features)."""
    if "messages" not in request and "prompt" not in request:
        return dict(request)
    if "messages" in request:
        msgs = [m for m in request.get("messages") or [] if isinstance(m, Mapping)]
        text = "\n".join(_text(m.get("content")) for m in msgs)
        turns = sum(1 for m in msgs if m.get("role") == "user")
        tools = bool(request.get("tools") or request.get("functions")) or any(
            m.get("role") in ("tool", "function") or m.get("tool_calls") for m in msgs
        )
    else:
        prompt = request.get("prompt")
        text = "\n".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt or "")
        turns, tools = 1, False
    return {
        "prompt_chars": len(text),
        "prompt_tokens": _tokens(text),
        "turns": turns,
        "tool_use": tools,
        "script": script_of(text),
        "model": str(request.get("model") or "(none)"),
    }


def _numeric(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _num_summary(x: np.ndarray[Any, Any]) -> dict[str, Any]:
    if x.size == 0:
        return {"n": 0}
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "p90": float(np.quantile(x, 0.9)),
    }


def _cat_summary(values: Sequence[str]) -> dict[str, Any]:
    c = Counter(values)
    n = len(values)
    return {"n": n, "shares": {k: v / n for k, v in c.most_common(5)}}


def _cliffs_delta(ref: np.ndarray[Any, Any], cur: np.ndarray[Any, Any]) -> float:
    """P(cur > ref) - P(cur < ref), by ranks: O((n + m) log(n + m))."""
    ref_sorted = np.sort(ref)
    below = np.searchsorted(ref_sorted, cur, side="left")  # refs strictly below each current
    above = ref.size - np.searchsorted(ref_sorted, cur, side="right")
    return float((below.sum() - above.sum()) / (ref.size * cur.size))


def _test_numeric(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> tuple[float, float, float]:
    import warnings

    from scipy.stats import ks_2samp

    if np.all(ref == ref[0]) and np.all(cur == ref[0]):
        return 0.0, 1.0, 0.0
    with warnings.catch_warnings():  # "exact calculation unsuccessful, switching to asymp": fine
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ks_2samp(ref, cur)
    return float(res.statistic), float(res.pvalue), _cliffs_delta(ref, cur)


def _test_categorical(ref: Sequence[str], cur: Sequence[str]) -> tuple[float, float, float]:
    from scipy.stats import chi2_contingency

    common = [k for k, _ in Counter([*ref, *cur]).most_common()]
    keep = set(common[:MAX_CATEGORIES])
    cats = sorted({v if v in keep else OTHER for v in [*ref, *cur]})
    if len(cats) < 2:
        return 0.0, 1.0, 0.0
    index = {c: j for j, c in enumerate(cats)}
    table = np.zeros((2, len(cats)))
    for row, vals in ((0, ref), (1, cur)):
        for v in vals:
            table[row, index[v if v in keep else OTHER]] += 1
    g, p, _, _ = chi2_contingency(table, correction=False, lambda_="log-likelihood")
    n = table.sum()
    v_eff = float(np.sqrt(g / (n * (min(table.shape) - 1)))) if n else 0.0
    return float(g), float(p), min(v_eff, 1.0)


@dataclass(frozen=True)
class MixResult:
    """The segment-mix test (:func:`segment_mix`), before any multiplicity adjustment."""

    statistic: float  # Pearson's X^2 of the tested table
    df: int
    p_value: float
    effect_size: float  # Cramer's V, sqrt(X^2 / N), in [0, 1]
    n_reference: int
    n_current: int
    reference_shares: dict[str, float]  # every segment, unmerged
    current_shares: dict[str, float]
    changes: list[dict[str, Any]]  # {segment, before, after, change}, the largest |change| first
    tested: list[str]  # the table's columns (segments kept, then "(other)" if any)
    merged: list[str]  # the segments pooled into "(other)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counts(values: Mapping[str, int] | Sequence[str]) -> Counter[str]:
    if isinstance(values, Mapping):
        out: Counter[str] = Counter()
        for k, v in values.items():
            n = int(v)
            if n < 0:
                raise ValueError(f"segment_mix: negative count {n} for segment {k!r}")
            if n:
                out[str(k)] += n
        return out
    return Counter(str(v) for v in values)


def segment_mix(
    reference: Mapping[str, int] | Sequence[str],
    current: Mapping[str, int] | Sequence[str],
    *,
    min_expected: float = MIN_EXPECTED,
) -> MixResult | None:
    """Did the share of traffic per segment change? ``reference`` and ``current`` are counts per
    segment (or one segment name per request). Pearson's chi-square test of homogeneity of the
    2 x k table after the merging rule of the module docstring; None when either window is empty
    or fewer than two columns are left to test (one segment: there is no mix)."""
    from scipy.stats import chi2

    ref, cur = _counts(reference), _counts(current)
    n_r, n_c = sum(ref.values()), sum(cur.values())
    if not n_r or not n_c:
        return None
    n = n_r + n_c
    pooled = ref + cur
    order = sorted(pooled, key=lambda k: (-pooled[k], k))
    scale = min(n_r, n_c) / n

    def enough(total: float) -> bool:
        return total * scale >= min_expected

    kept = [k for k in order[:MAX_CATEGORIES] if enough(pooled[k])]
    merged = [k for k in order if k not in kept]
    while merged and kept and not enough(sum(pooled[k] for k in merged)):
        merged.insert(0, kept.pop())  # the smallest kept segment joins "(other)"
    columns = [[ref[k] for k in kept], [cur[k] for k in kept]]
    if merged:
        columns[0].append(sum(ref[k] for k in merged))
        columns[1].append(sum(cur[k] for k in merged))
    table = np.asarray(columns, dtype=np.float64)
    if table.shape[1] < 2:
        return None
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    x2 = float(((table - expected) ** 2 / expected).sum())
    df = table.shape[1] - 1
    p = float(chi2.sf(x2, df))
    before = {k: ref[k] / n_r for k in order}
    after = {k: cur[k] / n_c for k in order}
    # the largest change first; of equal ones the segment that grew (the usual headline)
    moved = sorted(
        order, key=lambda k: (-round(abs(after[k] - before[k]), 12), before[k] - after[k])
    )
    changes: list[dict[str, Any]] = [
        {"segment": k, "before": before[k], "after": after[k], "change": after[k] - before[k]}
        for k in moved
    ]
    return MixResult(
        statistic=x2,
        df=df,
        p_value=p,
        effect_size=min(float(np.sqrt(x2 / n)), 1.0),
        n_reference=n_r,
        n_current=n_c,
        reference_shares=before,
        current_shares=after,
        changes=changes[:MAX_CATEGORIES],
        tested=kept + ([OTHER] if merged else []),
        merged=merged,
    )


def _share(x: float) -> str:
    return f"{100 * x:.0f}%" if x == 0 or x >= 0.01 else f"{100 * x:.1f}%"


def mix_changes_text(changes: Sequence[Mapping[str, Any]], most: int = 3) -> str:
    """``enterprise 10% -> 40%, chat 60% -> 40%``: the largest share changes (at least one; the
    others only when they moved by 2 points or more)."""
    rows = [c for c in changes if isinstance(c, Mapping)]
    shown = [c for i, c in enumerate(rows[:most]) if i == 0 or abs(float(c["change"])) >= 0.02]
    return ", ".join(
        f"{c['segment']} {_share(float(c['before']))} -> {_share(float(c['after']))}" for c in shown
    )


def _describe(r: ShiftResult) -> str:
    if r.feature == MIX and r.test == "chi-square":
        moved = mix_changes_text(r.changes)
        what = "segment mix changed" if r.shifted else "segment mix: no material change"
        return (
            f"{what}: {moved} of requests (chi-square p = {r.p_value:.2g}, Holm p ="
            f" {r.p_holm:.2g}, Cramer's V {r.effect_size:.2f})."
        )
    if r.test == "ks":
        was, now = r.reference_summary.get("median"), r.current_summary.get("median")
        change = f"median {was:g} -> {now:g}" if was is not None and now is not None else ""
        how = "larger" if r.effect_size > 0 else "smaller"
        verdict = f"shifted ({how}: Cliff's delta {r.effect_size:+.2f})" if r.shifted else (
            f"no material shift (Cliff's delta {r.effect_size:+.2f})"
        )  # fmt: skip
        return f"{r.feature}: {verdict}, {change}, Holm p = {r.p_holm:.2g}."
    verdict = "shifted" if r.shifted else "no material shift"
    return f"{r.feature}: {verdict} (Cramer's V {r.effect_size:.2f}), Holm p = {r.p_holm:.2g}."


def input_shift(
    reference: Sequence[Mapping[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    alpha: float = 0.05,
    min_effect: float = 0.1,
    mix: MixResult | None = None,
) -> list[ShiftResult]:
    """One result per feature seen in both windows, Holm-adjusted across them; features in the
    order they first appear. Request bodies go through :func:`features_of`. ``mix`` (the
    :func:`segment_mix` of the task the requests belong to) is one more test of the family: the
    last row, feature ``segment_mix``."""
    if not reference or not current:
        raise ValueError(
            "input_shift: both windows need requests "
            f"(reference {len(reference)}, current {len(current)})"
        )
    ref = [features_of(r) for r in reference]
    cur = [features_of(r) for r in current]
    names: list[str] = []
    for row in [*ref, *cur]:
        names.extend(k for k in row if k not in names)
    raw: list[tuple[str, str, float, float, float, dict[str, Any], dict[str, Any]]] = []
    for name in names:
        rv = [r[name] for r in ref if r.get(name) is not None]
        cv = [r[name] for r in cur if r.get(name) is not None]
        if not rv or not cv:
            continue
        if all(_numeric(v) for v in [*rv, *cv]):
            a = np.asarray(rv, dtype=np.float64)
            b = np.asarray(cv, dtype=np.float64)
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                continue
            stat, p, eff = _test_numeric(a, b)
            raw.append((name, "ks", stat, p, eff, _num_summary(a), _num_summary(b)))
        else:
            sa, sb = [str(v) for v in rv], [str(v) for v in cv]
            stat, p, eff = _test_categorical(sa, sb)
            raw.append((name, "g-test", stat, p, eff, _cat_summary(sa), _cat_summary(sb)))
    if mix is not None:
        rs = {"n": mix.n_reference, "shares": mix.reference_shares}
        cs = {"n": mix.n_current, "shares": mix.current_shares}
        raw.append((MIX, "chi-square", mix.statistic, mix.p_value, mix.effect_size, rs, cs))
    adjusted = holm([r[3] for r in raw]) if raw else []
    out = []
    for (name, test, stat, p, eff, rs, cs), ph in zip(raw, adjusted, strict=True):
        res = ShiftResult(
            feature=name,
            test=test,
            statistic=stat,
            p_value=p,
            effect_size=eff,
            reference_summary=rs,
            current_summary=cs,
            shifted=bool(ph < alpha and abs(eff) >= min_effect),
            p_holm=ph,
            effect="cliffs_delta" if test == "ks" else "cramers_v",
            changes=list(mix.changes) if mix is not None and test == "chi-square" else [],
        )
        out.append(ShiftResult(**{**asdict(res), "description": _describe(res)}))
    return out


def mix_alone(mix: MixResult, *, alpha: float = 0.05, min_effect: float = 0.1) -> ShiftResult:
    """The segment-mix row on its own (a family of one test: Holm p = p), for a task whose
    segments had no request features tested this run."""
    (row,) = input_shift([{}], [{}], alpha=alpha, min_effect=min_effect, mix=mix)
    return row
