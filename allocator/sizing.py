"""Risk-parity weights (SPEC §4).

* :func:`inverse_vol_weights`: ``w_s = (1 / vol_s) / Σ (1 / vol)`` over the eligible.
* :func:`erc_weights`: equal risk contribution over a covariance matrix (Maillard, Roncalli &
  Teïletche 2010), solved as the convex problem ``min ½ yᵀΣy − (1/n) Σ log y`` by damped Newton
  steps and normalised; the result is checked to give equal risk contributions
  ``w_i (Σw)_i`` to 1e-8 relative (SPEC §4; a fixed bound, independent of the solver's ``tol``),
  and a :class:`~allocator.errors.SolverError` is raised otherwise (never a silent fallback).
* :class:`SizingSchedule`: when base weights are recomputed (first eligible session, every
  ``rebalance_every`` sessions after it, and at once when the bench set changes).

Why ERC is solved in that convex form: the objective is strictly convex on ``y > 0``, so it has
exactly one minimiser and its normalisation is the ERC portfolio. There is no local optimum to
land in, and a solve either meets the 1e-8 check or is reported as a failure, with no fallback
weights to hide it behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from allocator._jit import njit
from allocator.arrays import FloatArray
from allocator.errors import SolverError

__all__ = [
    "REASONS",
    "RecomputeReason",
    "SizingSchedule",
    "erc_weights",
    "inverse_vol_kernel",
    "inverse_vol_weights",
    "risk_contributions",
    "schedule_kernel",
]


def inverse_vol_weights(vols: FloatArray, eligible: npt.NDArray[np.bool_]) -> FloatArray:
    """Compute weights proportional to ``1 / vol`` over ``eligible``, 0 elsewhere.

    Parameters
    ----------
    vols : numpy.ndarray of float64, shape (n,)
        Annualised volatilities (``vol_60d``); only the eligible entries are read, and each of
        them must be finite and > 0.
    eligible : numpy.ndarray of bool, shape (n,)
        The strategies to weight (SPEC §4: active, with a defined ``vol_60d > 0``).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Fractions of capital, >= 0, summing to 1 over ``eligible``; all zeros when no strategy
        is eligible.

    Raises
    ------
    ValueError
        An eligible strategy's vol is not finite or not > 0.
    """
    vols = np.ascontiguousarray(vols, dtype=np.float64)
    eligible = np.ascontiguousarray(eligible, dtype=np.bool_)
    v = vols[eligible]
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError("every eligible strategy needs a finite vol > 0")
    weights = np.empty_like(vols)
    inverse_vol_kernel(vols, eligible, weights)
    return weights


@njit
def inverse_vol_kernel(vols: FloatArray, eligible: npt.NDArray[np.bool_], out: FloatArray) -> None:
    """:func:`inverse_vol_weights` into ``out``, compiled, without the input check.

    The engine's session kernel calls it with ``eligible`` = active with a finite ``vol > 0``.
    """
    total = 0.0
    for j in range(vols.shape[0]):
        if eligible[j]:
            total += 1.0 / vols[j]
    for j in range(vols.shape[0]):
        out[j] = (1.0 / vols[j]) / total if eligible[j] else 0.0


def risk_contributions(weights: FloatArray, cov: FloatArray) -> FloatArray:
    """Return each asset's share of portfolio variance, ``w_i (Σw)_i / wᵀΣw`` (sums to 1).

    Parameters
    ----------
    weights : numpy.ndarray of float64, shape (n,)
        Portfolio weights.
    cov : numpy.ndarray of float64, shape (n, n)
        Covariance matrix of the assets' returns (any consistent unit).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Fractions of the portfolio variance.
    """
    marginal = cov @ weights
    total = float(weights @ marginal)
    return np.asarray(weights * marginal / total, dtype=np.float64)


def erc_weights(
    cov: FloatArray,
    budgets: FloatArray | None = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> FloatArray:
    """Long-only equal-risk-contribution weights for covariance ``cov`` (sum to 1).

    ``budgets`` (positive, any scale) asks for risk contributions proportional to it instead
    of equal ones (risk budgeting); the allocator itself uses equal budgets. Raises
    :class:`SolverError` when ``cov`` is not a finite symmetric matrix with a positive diagonal,
    or when the risk contributions are not on budget to ``1e-8`` relative at the end.

    Parameters
    ----------
    cov : numpy.ndarray of float64, shape (n, n)
        Covariance of the eligible strategies' returns (the engine passes the sample
        covariance, ddof 1, of the last ``vol_window`` daily returns; the weights do not depend
        on its scale).
    budgets : numpy.ndarray of float64, shape (n,), optional
        Positive risk budgets, normalised to sum to 1; default equal budgets ``1 / n``.
    tol : float, default 1e-10
        Stopping tolerance of the Newton loop: it stops once ``gᵀH⁻¹g < 2 tol²`` (``g`` the
        gradient, ``H`` the Hessian). The final 1e-8 check does not depend on it.
    max_iter : int, default 200
        Newton iterations at most; the result is then accepted only if it passes the 1e-8
        check.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Weights > 0 summing to 1 (``[1.0]`` when ``n == 1``).

    Raises
    ------
    SolverError
        Bad ``cov`` or ``budgets``, a failed line search, or risk contributions off budget by
        more than 1e-8 relative (``(max − min) / mean`` of contribution / budget).
    """
    sigma = np.asarray(cov, dtype=np.float64)
    n = sigma.shape[0]
    if sigma.shape != (n, n) or n == 0:
        raise SolverError(f"ERC needs a non-empty square covariance, got shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)):
        raise SolverError("ERC covariance has non-finite entries")
    if not np.allclose(sigma, sigma.T, rtol=1e-12, atol=0.0):
        raise SolverError("ERC covariance is not symmetric")
    diag = np.diag(sigma)
    if np.any(diag <= 0):
        raise SolverError("ERC covariance has a zero or negative variance on its diagonal")
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = np.asarray(budgets, dtype=np.float64)
        if b.shape != (n,) or not np.all(np.isfinite(b)) or np.any(b <= 0):
            raise SolverError(f"risk budgets must be {n} positive numbers, got {budgets!r}")
        b = b / b.sum()
    if n == 1:
        return np.ones(1)
    # Scale to unit variances for conditioning; y is rescaled back at the end.
    scale = 1.0 / np.sqrt(diag)
    corr = sigma * np.outer(scale, scale)
    y = b / np.sqrt(b @ corr @ b) * np.sqrt(b.sum())  # inverse-vol start, right magnitude

    def objective(z: FloatArray) -> float:
        return float(0.5 * z @ corr @ z - b @ np.log(z))

    f = objective(y)
    for _ in range(max_iter):
        grad = corr @ y - b / y
        hess = corr + np.diag(b / (y * y))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError as exc:  # pragma: no cover - hess is positive definite
            raise SolverError(f"ERC Newton system is singular: {exc}") from exc
        decrement = float(grad @ step)
        if decrement < 2 * tol * tol:
            break
        t = 1.0
        while True:  # backtracking line search, staying in y > 0
            candidate = y - t * step
            if np.all(candidate > 0):
                fc = objective(candidate)
                # Near the optimum the objective cannot resolve the decrease any more: in the
                # quadratic region a full Newton step is taken without the Armijo test.
                if fc <= f - 0.25 * t * decrement or (t == 1.0 and decrement < 1e-12):
                    break
            t *= 0.5
            if t < 1e-16:
                raise SolverError("ERC line search failed to make progress")
        y, f = candidate, fc
    weights = y * scale
    weights /= weights.sum()
    ratio = risk_contributions(weights, sigma) / b
    spread = float((ratio.max() - ratio.min()) / ratio.mean())
    if not np.all(weights > 0) or spread > 1e-8:
        raise SolverError(
            f"ERC did not converge: risk contributions differ by {spread:.3e} relative (> 1e-8)"
        )
    return np.asarray(weights, dtype=np.float64)


RecomputeReason = str  # "scheduled", "event" or "scheduled+event"


@dataclass(slots=True)
class SizingSchedule:
    """The recompute clock of SPEC §4 (mutable, advanced once per session in order).

    ``anchor`` is the session index of the first recompute (the first session with at least one
    eligible strategy); scheduled recomputes fall on ``anchor + k * every``. Event-driven
    recomputes (a change of the bench set) happen in addition and never move the schedule.

    Attributes
    ----------
    every : int
        Sessions between scheduled recomputes (``sizing.rebalance_every``), >= 1.
    anchor : int or None
        Session index (0-based, in the engine's order) of the first recompute; ``None`` until a
        session has an eligible strategy.
    """

    every: int
    anchor: int | None = None

    def reason(self, t: int, *, any_eligible: bool, bench_changed: bool) -> RecomputeReason | None:
        """Say whether base weights are recomputed at session ``t``, and why.

        Sets :attr:`anchor` at the first session with ``any_eligible``.

        Parameters
        ----------
        t : int
            Session index, 0-based; called once per session in increasing order.
        any_eligible : bool
            At least one strategy is eligible at ``t`` (after this session's bench changes).
        bench_changed : bool
            The bench set after this session's benchings differs from the set before its
            re-admissions.

        Returns
        -------
        str or None
            ``"scheduled"``, ``"event"``, ``"scheduled+event"``, or ``None`` (no recompute).
        """
        anchor = np.array([-1 if self.anchor is None else self.anchor], dtype=np.int64)
        code = schedule_kernel(t, anchor, self.every, any_eligible, bench_changed)
        self.anchor = None if anchor[0] < 0 else int(anchor[0])
        return REASONS[code]


# Recompute reason codes of schedule_kernel, and their text in events.csv.
REASONS: tuple[RecomputeReason | None, ...] = (None, "scheduled", "event", "scheduled+event")


@njit
def schedule_kernel(
    t: int, anchor: npt.NDArray[np.int64], every: int, any_eligible: bool, bench_changed: bool
) -> int:
    """:meth:`SizingSchedule.reason` compiled: the code of :data:`REASONS` (0: no recompute).

    ``anchor[0]`` is the session of the first recompute (-1: none yet), set here.
    """
    scheduled = False
    if anchor[0] < 0:
        if any_eligible:
            anchor[0] = t
            scheduled = True
    elif (t - anchor[0]) % every == 0:
        scheduled = True
    return (1 if scheduled else 0) + (2 if bench_changed else 0)
