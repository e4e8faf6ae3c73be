"""Drift after cutover: an anytime-valid monitor of the judged paired score, per segment.

Design note (STATISTICS.md section 10). The stream is d_1, d_2, ... in [-1, 1], the judged paired
score new-minus-old in time order. The alert line is ``L = -tolerance * alert_at`` (half the agreed
tolerance by default). Two detectors run side by side, each spending half of ``alpha``:

* The confidence sequence: :class:`~pytest_parity.stats.betting.BettingSequence` at confidence
  ``1 - alpha`` (the time-uniform hedged betting CS of Waudby-Smith & Ramdas 2023). It alerts when
  its upper bound falls below ``L``. Guaranteed: for a stream whose mean is a constant mu >= L,
  the chance that this EVER happens, however often the monitor is looked at (every item, every
  hour, every 100 items), is at most alpha / 2 (the "bet the mean is lower" gambler's capital at
  mu never reaches 2 / alpha). It is a sequence for the mean of the whole stream: after a long
  stable period a drift moves it only slowly (about as many drifted pairs as stable ones are
  needed), which is why the second detector exists.
* The change detector: a Shiryaev-Roberts e-detector (Shin, Ramdas & Rinaldo 2023, "E-detectors")
  with a prior over the change point. Each pair gives an e-value for H0 "the mean is >= L",
  e_i = 1 + lambda_i (L - d_i), with predictable bets: lambda* = delta / (s2_{i-1} + delta^2)
  is the growth-optimal bet against a mean of ``2 L`` (the full tolerance at the default;
  delta = |L|, s2 the running variance, prior 1/4), and six detectors bet lambda* x 1, 2, 4, ..,
  32 (capped at 0.5 / (1 - L), so every factor is >= 1/2), averaged with weights 1/2 for the
  design bet and 1/10 for each other one: the design bet is slow on a gross drift (a broken
  stack), the large ones find that in tens of pairs; the mixture costs the design drift log 2
  nats and a gross one log 10. Per bet size the statistic is
  R_t = sum_k w_k prod_{i=k..t} e_i + sum_{k>t} w_k, with change-point weights
  w_k = f(k) - f(k + 1), f(k) = 1 / log(k + e - 1) (they sum to 1; about 1 / (k log^2 k)). R is a
  nonnegative supermartingale with R_0 = 1 whenever every pair's conditional mean given the past is
  >= L (any dependence, any drift that stays above the line), so by Ville's inequality the chance
  that log R EVER reaches log(2 / alpha) is at most alpha / 2: a time-uniform false alarm
  probability over the unbounded stream, stronger than an average run length (a plain CUSUM with
  h = 30 as in section 10 alarms every ~146k items, so about half of all 100k-item A/A streams).

Together: P(any false alert, ever) <= alpha for a stationary stream with mean >= L. Alerts are
latched: the first alert stays (``alarmed_at``) until the monitor is started over; the statistics
never "un-see" a change, clearing an alert is an operator's decision.

Not guaranteed: a detection delay. A drift to just below L is found late or never in practice
(the delay grows like 1 / (L - mu)^2: a stream sitting exactly at the alert line is, by design,
never an alert; measured: 1-3% of such streams alarm over 20k pairs, bound 5%); a slow ramp is found
when its mean is well past the line; a change in variance alone is not a drift of the mean. The
sequence assumes one constant mean: after a change its running intersection can end up away from
the running mean (the estimate outside [lower, upper]); read the band as the evidence against the
line, not as a window's mean. The change detector pays for its guarantee with a threshold that
grows slowly with the change's position (log k + 2 log log k) and with its null boundary at L,
half the tolerance away from the drift it is tuned for: in section 10's setting (tolerance 1.5
points, flip rate 0.08, change after 20k pairs) its median delay is ~25k pairs at -1.5 points and
~3.5k at -3 points, where the plain CUSUM's ~3k / ~1.2k come with a false alarm every ~146k pairs
(tests/test_drift_stats.py, bench/drift_simulation.py).

The CS alert index is the pair whose bet excluded the last candidate mean at or above the line;
the change detector's, the pair at which it crossed. Every running sum is added one pair after the
other, so the same pairs give the same status, bit for bit, in one update or in many.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pytest_parity.stats.betting import BettingSequence

__all__ = [
    "DRIFT_STATE_VERSION",
    "GRID",
    "DriftMonitor",
    "DriftStatus",
    "change_detector",
    "detector_start",
]

DRIFT_STATE_VERSION = 1
GRID = 8193  # candidate means of the CS over [-1, 1]: a step of 0.024 points
BETS = 6  # bet sizes of the change detector: lambda*, 2 lambda*, ... 32 lambda* (capped)
_PRIOR_VAR = 0.25  # prior variance of d (as if one pseudo-pair at +-0.5) for the first bets
_TRIGGERS = (None, "sequence", "cusum", "sequence and cusum")
_CAP = 0.5  # bet cap: every e-value factor stays >= 1/2


def _log_bet_weights() -> NDArray[np.float64]:
    """log v_j: half the weight on the design bet, the other half shared by the larger ones."""
    v = np.full(BETS, 0.5 / (BETS - 1))
    v[0] = 0.5
    return np.asarray(np.log(v))


def _log_f(k: NDArray[np.float64]) -> NDArray[np.float64]:
    """log f(k), f(k) = 1 / log(k + e - 1): f(1) = 1, decreasing to 0."""
    return np.asarray(-np.log(np.log(k + math.e - 1.0)))


def _log_weights(k: NDArray[np.float64]) -> NDArray[np.float64]:
    """log w_k = log(f(k) - f(k + 1)), computed without cancellation."""
    a, b = _log_f(k), _log_f(k + 1.0)
    return np.asarray(a + np.log(-np.expm1(b - a)))


def _pts(x: float) -> str:
    return f"{100 * x:+.2f} pts"


def _running(carry: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """[carry, carry + v_1, carry + v_1 + v_2, ...] along the last axis, added one by one (so the
    same values in any batches give the same bits)."""
    return np.cumsum(np.concatenate((carry[..., None], v), -1), -1)


def change_detector(
    d: NDArray[np.float64],
    n: int,
    state: tuple[NDArray[np.float64], ...],
    line: float,
) -> tuple[NDArray[np.float64], tuple[NDArray[np.float64], ...]]:
    """The e-detector over new pairs ``d`` (last axis: time; leading axes: independent streams
    sharing ``n``, so a simulation runs many streams at once through this same code).

    ``state`` = (sum of d, sum of d^2, S, B) after the ``n`` earlier pairs; S and B have shape
    ``(..., BETS)``: per bet size j, S^j = sum of log e_i^j, B^j = log sum_k w_k exp(-S^j_{k-1}),
    so that log A^j = B^j + S^j. Returns log R_t after each new pair, R_t = sum_j v_j A^j_t +
    sum_{k>t} w_k (bet weights :func:`_log_bet_weights`), and the new state. Every running
    quantity is accumulated one pair after the other: batches of any size give the same bits."""
    total, total_sq, s_all, b_all = (np.asarray(x, dtype=np.float64) for x in state)
    m = d.shape[-1]
    delta, cap = -line, _CAP / (1.0 - line)
    i = n + np.arange(m, dtype=np.float64)  # pairs before each one
    cum = _running(total, d)
    cum_sq = _running(total_sq, d * d)
    before, before_sq = cum[..., :-1], cum_sq[..., :-1]
    s2 = (_PRIOR_VAR + np.maximum(before_sq - before * before / np.maximum(i, 1.0), 0.0)) / (
        i + 1.0
    )
    base = delta / (s2 + delta * delta)
    k = n + 1.0 + np.arange(m, dtype=np.float64)  # 1-based change points
    log_w = _log_weights(k)
    log_v = _log_bet_weights()
    log_r = np.full(d.shape, -np.inf)
    new_s, new_b = np.empty(s_all.shape), np.empty(b_all.shape)
    for j in range(BETS):
        lam = np.minimum(base * 2.0**j, cap)
        s_run = _running(s_all[..., j], np.log1p(lam * (line - d)))
        b_run = np.logaddexp.accumulate(
            np.concatenate((b_all[..., j : j + 1], log_w - s_run[..., :-1]), -1), axis=-1
        )
        log_r = np.logaddexp(log_r, log_v[j] + b_run[..., 1:] + s_run[..., 1:])
        new_s[..., j], new_b[..., j] = s_run[..., -1], b_run[..., -1]
    log_r = np.logaddexp(log_r, _log_f(k + 1.0))
    return log_r, (cum[..., -1], cum_sq[..., -1], new_s, new_b)


def detector_start(shape: tuple[int, ...] = ()) -> tuple[NDArray[np.float64], ...]:
    """The change detector's state before any pair (for ``shape`` independent streams)."""
    return (
        np.zeros(shape),
        np.zeros(shape),
        np.zeros((*shape, BETS)),
        np.full((*shape, BETS), -np.inf),
    )


@dataclass(frozen=True)
class DriftStatus:
    """One segment's monitor after an update. Scores and bounds are on the d scale [-1, 1]."""

    n: int  # pairs counted so far (all runs)
    estimate: float  # the running mean of d
    lower: float  # the confidence sequence at confidence 1 - alpha, valid at every look
    upper: float
    alert: bool  # latched: True from the first alert on
    reason: str  # one plain sentence
    cusum: float  # the change detector's log e-value, log R_t
    cusum_threshold: float  # log(2 / alpha): the change detector alerts at or above it
    alarmed_at: int | None  # 0-based index of the pair at which the alert first fired
    alert_line: float  # -tolerance * alert_at
    trigger: str | None  # "sequence", "cusum" or "sequence and cusum": what fired first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DriftMonitor:
    """Per-segment drift monitor: feed it the judged paired scores in time order, batch by batch.

    Deterministic (no randomness at all); the state (:meth:`to_state`) is a small JSON document,
    so a scheduled run continues the sequence of the previous one rather than restarting it."""

    def __init__(self, tolerance: float, alpha: float = 0.05, alert_at: float = 0.5) -> None:
        for name, v, ok in (
            ("tolerance", tolerance, 0.0 < tolerance <= 1.0),
            ("alpha", alpha, 0.0 < alpha < 1.0),
            ("alert_at", alert_at, 0.0 < alert_at <= 1.0),
        ):
            if isinstance(v, bool) or not isinstance(v, int | float) or not ok:
                raise ValueError(
                    f"DriftMonitor: {name} must be in "
                    + {"tolerance": "(0, 1]", "alpha": "(0, 1)", "alert_at": "(0, 1]"}[name]
                    + f", got {v!r}"
                )
        self.tolerance, self.alpha, self.alert_at = float(tolerance), float(alpha), float(alert_at)
        self.line = -self.tolerance * self.alert_at
        self._delta = -self.line  # the gap between the line and the design drift 2 L
        self._cap = _CAP / (1.0 - self.line)
        self.threshold = math.log(2.0 / self.alpha)
        self._seq = BettingSequence(-1.0, 1.0, confidence=1.0 - self.alpha, grid=GRID)
        self.n = 0
        self._det = detector_start()  # the change detector's running sums (change_detector)
        self._log_r = 0.0  # its log e-value after the last pair
        # the grid candidates whose exclusion puts the upper bound below the line
        self._critical = max(int(np.searchsorted(self._seq._m * 2.0 - 1.0, self.line)) - 1, 0)
        self._alarmed_at: int | None = None
        self._trigger: str | None = None

    # -- the public surface ------------------------------------------------------------------

    def update(self, values: Sequence[float] | NDArray[np.float64]) -> DriftStatus:
        """Add pairs (time order; any batch size, empty included) and return the status."""
        d = np.asarray(values, dtype=np.float64).ravel()
        if d.size and (not np.all(np.isfinite(d)) or d.min() < -1.0 or d.max() > 1.0):
            bad = float(d[~(np.isfinite(d) & (d >= -1.0) & (d <= 1.0))][0])
            raise ValueError(
                f"DriftMonitor.update: paired scores must be finite and in [-1, 1], got {bad!r} "
                "(hint: feed new-minus-old of scores in [0, 1], or the pairwise judge's -1/0/+1)"
            )
        if d.size:
            start = self.n
            _, up = self._seq.update(d)
            log_r, self._det = change_detector(d, start, self._det, self.line)
            self._log_r = float(log_r[-1])
            self.n += d.size
            if self._alarmed_at is None:
                crossed = np.flatnonzero(log_r >= self.threshold)
                cusum_at = start + int(crossed[0]) if crossed.size else None
                seq_at = self._sequence_alarm(up, self.n - 1)
                if cusum_at is not None or seq_at is not None:
                    first = min(x for x in (cusum_at, seq_at) if x is not None)
                    self._alarmed_at = first
                    self._trigger = (
                        "sequence and cusum"
                        if cusum_at == seq_at
                        else ("cusum" if cusum_at == first else "sequence")
                    )
        return self.status()

    def _sequence_alarm(self, upper: float, last: int) -> int | None:
        """The pair at which the upper bound fell below the line (None: it has not): the last
        exclusion, in this update, of a candidate at or above the line."""
        if not upper < self.line:
            return None
        idx, at = self._seq.excluded
        mine = at[idx >= self._critical]
        return int(mine.max()) if mine.size else last

    def status(self) -> DriftStatus:
        lo, up = self._seq.interval()
        est = self._seq.estimate if self.n else 0.0
        line = f"the alert line {_pts(self.line)} ({self.alert_at:g} of the tolerance)"
        log_r = self._log_r
        if self.n == 0:
            reason = "No judged pairs yet."
        elif self._alarmed_at is not None:
            why = {
                "sequence": f"the upper bound of the mean fell below {line}",
                "cusum": (
                    f"the change detector crossed its threshold {self.threshold:.2f}"
                    f" (a drift past {line} since some recent pair)"
                ),
                "sequence and cusum": (
                    f"the upper bound fell below {line} and the change detector crossed its"
                    " threshold"
                ),
            }[str(self._trigger)]
            reason = (
                f"Drift: {why} at pair {self._alarmed_at + 1:,}; now the estimate is"
                f" {_pts(est)}, the bound [{_pts(lo)}, {_pts(up)}]."
            )
        else:
            reason = (
                f"No drift shown: the upper bound {_pts(up)} is above {line} and the change"
                f" detector ({log_r:.2f}) is below its threshold {self.threshold:.2f}"
                f" after {self.n:,} pairs."
            )
        return DriftStatus(
            n=self.n,
            estimate=float(est),
            lower=float(lo),
            upper=float(up),
            alert=self._alarmed_at is not None,
            reason=reason,
            cusum=log_r,
            cusum_threshold=self.threshold,
            alarmed_at=self._alarmed_at,
            alert_line=self.line,
            trigger=self._trigger,
        )

    # -- state across runs ----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-serializable document to continue from (bounded: no pair is kept)."""
        return {
            "version": DRIFT_STATE_VERSION,
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "alert_at": self.alert_at,
            "n": self.n,
            "detector": {
                "sum": float(self._det[0]),
                "sum_sq": float(self._det[1]),
                "s": [float(v) for v in self._det[2]],
                "b": [None if v == -math.inf else float(v) for v in self._det[3]],
                "log_r": self._log_r,
            },
            "alarmed_at": self._alarmed_at,
            "trigger": self._trigger,
            "sequence": self._seq.to_state(),
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        *,
        tolerance: float | None = None,
        alpha: float | None = None,
        alert_at: float | None = None,
    ) -> DriftMonitor:
        """The monitor saved by :meth:`to_state`. Given ``tolerance`` / ``alpha`` / ``alert_at``
        (the contract's current ones) that differ from the stored ones, refuses: the sequence's
        guarantee holds only for the settings it was started with."""
        where = "DriftMonitor.from_state"
        if not isinstance(state, Mapping) or state.get("version") != DRIFT_STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"{where}: state version {got!r}, this code reads version {DRIFT_STATE_VERSION}"
                " (hint: the state was written by another release; reset the monitor)"
            )
        for name, want in (("tolerance", tolerance), ("alpha", alpha), ("alert_at", alert_at)):
            have = state.get(name)
            if want is not None and (
                not isinstance(have, int | float) or not math.isclose(have, want, rel_tol=1e-12)
            ):
                raise ValueError(
                    f"{where}: the stored monitor was started with {name} {have!r}, the contract"
                    f" now says {want!r} (hint: restore {name}, or reset the monitor to start a"
                    " new sequence with the new value)"
                )
        try:
            mon = cls(state["tolerance"], state["alpha"], state["alert_at"])
            mon.n = int(state["n"])
            det = state["detector"]
            s_j = [float(v) for v in det["s"]]
            b_j = [-math.inf if v is None else float(v) for v in det["b"]]
            if len(s_j) != BETS or len(b_j) != BETS:
                raise ValueError(f"{len(s_j)} bet sizes, this code has {BETS}")
            mon._det = (
                np.asarray(float(det["sum"])),
                np.asarray(float(det["sum_sq"])),
                np.asarray(s_j),
                np.asarray(b_j),
            )
            mon._log_r = float(det["log_r"])
            mon._alarmed_at = None if state["alarmed_at"] is None else int(state["alarmed_at"])
            mon._trigger = state["trigger"]
            mon._seq = BettingSequence.from_state(state["sequence"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: a damaged state ({exc}); reset the monitor") from None
        if mon._seq.n != mon.n or mon._trigger not in _TRIGGERS:
            raise ValueError(f"{where}: a damaged state (inconsistent counts); reset the monitor")
        return mon
