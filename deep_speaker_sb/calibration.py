"""Scores people can act on: calibrated LLRs and operating points.

A cosine score says "more alike" but not "how likely the same speaker":
0.62 means something else on another corpus.  This module (numpy only,
imported by the torch-free :mod:`deep_speaker_sb.runtime` as well as by
``DeepSpeaker``) turns scores into

- **log-likelihood ratios**: ``llr = a * cosine + b``, fitted by linear
  logistic regression (:func:`fit_logistic`) on labelled trials the model
  did not train on, weighted so that the fit is at a stated prior (0.5 by
  default, the usual choice of Brummer-style calibration); the posterior
  of "same speaker" at a prior ``p`` is ``sigmoid(llr + logit(p))``
  (:func:`posterior`);
- **operating points**: cosine thresholds for a target false-accept rate
  (:func:`far_threshold`) or for the EER, each with the rates measured on
  the trials it was fitted on and how many trials that was
  (:class:`OperatingPoint`);
- **calibration metrics**: ``Cllr`` (:func:`cllr`; 1 bit is a system
  that always says "don't know", lower is better) and ``min-Cllr``
  (:func:`min_cllr`, the Cllr after the best monotonic recalibration,
  found by pool-adjacent-violators, :func:`pav_llrs`): their difference
  is the calibration loss.

An export stores both in its ``config.json`` (``calibration`` and
``operating_points``, :meth:`ScoreCalibration.to_config`); an export
without them loads as before, with its single ``threshold.json``
threshold and no LLR.

Example
-------
>>> rng = np.random.default_rng(0)
>>> tar, non = rng.normal(0.5, 0.1, 2000), rng.normal(0.3, 0.1, 2000)
>>> cal = fit_logistic(tar, non)  # true: a = 0.2 / 0.01, b = -0.16 / 0.02
>>> round(cal.a), round(cal.b)
(19, -8)
>>> round(float(posterior(cal.llr(0.4), 0.5)), 2)  # halfway: "don't know"
0.51
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deep_speaker_sb.errors import ConfigError, DataError

# SpeechBrain's get_logger would import torch: the standard library's here
logger = logging.getLogger(__name__)

#: The false-accept rates an export gets an operating point for.
FAR_TARGETS = (0.01, 0.001)
#: A FAR threshold is reliable with at least this many non-target trials
#: per expected false accept (10 / far non-target trials).
MIN_FALSE_ACCEPTS = 10
#: The prior of the posteriors that ``verify.py`` prints by default.
DEFAULT_PRIOR = 0.5
#: The name of the decision threshold of an export without operating
#: points (the one of its ``threshold.json``).
STORED_THRESHOLD = "threshold.json"


def _softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` without overflow (``inf`` stays ``inf``)."""
    return np.logaddexp(0.0, x)


def logit(p: float) -> float:
    """``log(p / (1 - p))``.

    Example
    -------
    >>> logit(0.5), round(logit(0.01), 3)
    (0.0, -4.595)
    """
    if not 0.0 < p < 1.0:
        raise ConfigError(f"a prior must lie in (0, 1), got {p}")
    return math.log(p) - math.log1p(-p)


def posterior(llr: np.ndarray | float, prior: float = DEFAULT_PRIOR):
    """P(same speaker) of an LLR at a prior: ``sigmoid(llr + logit(p))``.

    Example
    -------
    >>> float(posterior(0.0, 0.5)), round(float(posterior(0.0, 0.1)), 3)
    (0.5, 0.1)
    >>> posterior(np.array([-50.0, 50.0])).round(3).tolist()
    [0.0, 1.0]
    """
    z = np.asarray(llr, dtype=np.float64) + logit(prior)
    out = np.exp(-_softplus(-z))  # sigmoid, stable at both ends
    return float(out) if out.ndim == 0 else out


def _two_classes(
    tar, non, allow_inf: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    tar = np.asarray(tar, dtype=np.float64).ravel()
    non = np.asarray(non, dtype=np.float64).ravel()
    if len(tar) == 0 or len(non) == 0:
        raise DataError(
            "calibration needs both target and non-target trials "
            f"(got {len(tar)} target, {len(non)} non-target)"
        )
    ok = np.isnan if allow_inf else lambda x: ~np.isfinite(x)
    if ok(tar).any() or ok(non).any():
        raise DataError("calibration scores must be finite numbers")
    return tar, non


@dataclasses.dataclass(frozen=True)
class Calibration:
    """An affine map of cosine scores to LLRs: ``llr = a * score + b``.

    Attributes
    ----------
    a, b : float
        Slope (> 0, so the map keeps the order of scores) and offset.
    prior : float
        The prior the logistic regression was weighted at.
    fitted_on : str
        What trials it was fitted on (e.g. ``"validation trials"``).
    trials, n_target, n_nontarget : int
        How many trials, of each kind.
    cllr, min_cllr : float, optional
        Cllr of the calibrated scores and min-Cllr, on those trials.
    """

    a: float
    b: float
    prior: float = DEFAULT_PRIOR
    fitted_on: str = ""
    trials: int = 0
    n_target: int = 0
    n_nontarget: int = 0
    cllr: float | None = None
    min_cllr: float | None = None

    def formula(self) -> str:
        """``"LLR = a * cosine + b"`` with the numbers.

        Example
        -------
        >>> Calibration(12.5, -5.0).formula()
        'LLR = 12.5 * cosine - 5'
        """
        sign = "-" if self.b < 0 else "+"
        return f"LLR = {self.a:.6g} * cosine {sign} {abs(self.b):.6g}"

    def llr(self, score: np.ndarray | float):
        """The LLR of scores (same shape; a float for a float).

        Example
        -------
        >>> Calibration(10.0, -5.0).llr(0.5)
        0.0
        """
        out = self.a * np.asarray(score, dtype=np.float64) + self.b
        return float(out) if out.ndim == 0 else out

    def to_config(self) -> dict[str, Any]:
        """The ``calibration`` entry of ``config.json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Calibration:
        """Reads :meth:`to_config`'s entry (checked: finite, ``a > 0``).

        Example
        -------
        >>> Calibration.from_config({"a": 2, "b": 1, "trials": 10}).llr(1)
        3.0
        """
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            cal = cls(**{k: v for k, v in entry.items() if k in names})
            a, b = float(cal.a), float(cal.b)
        except (TypeError, ValueError) as exc:
            raise DataError(f"bad calibration entry: {exc}") from None
        if not (math.isfinite(a) and math.isfinite(b) and a > 0):
            raise DataError(
                f"bad calibration entry: need finite a > 0 and b, got "
                f"a={cal.a}, b={cal.b}"
            )
        return dataclasses.replace(cal, a=a, b=b)


def fit_logistic(
    tar: Sequence[float] | np.ndarray,
    non: Sequence[float] | np.ndarray,
    prior: float = DEFAULT_PRIOR,
    fitted_on: str = "",
    max_iter: int = 100,
) -> Calibration:
    """Fits ``llr = a * score + b`` by prior-weighted logistic regression.

    Minimizes the cross-entropy ``prior * mean_tar(log(1 + exp(-(llr +
    logit(prior))))) + (1 - prior) * mean_non(log(1 + exp(llr +
    logit(prior))))`` (each class weighted by its prior over its count,
    so the trial proportions do not matter) with Newton's method on the
    two parameters; a tiny ridge on the slope keeps perfectly separated
    scores finite.

    Arguments
    ---------
    tar, non : array-like
        Target and non-target scores.
    prior : float
        The prior the fit is weighted at (0.5: both kinds count alike).
    fitted_on : str
        Recorded in the result.
    max_iter : int
        Most Newton steps.

    Returns
    -------
    Calibration
        With ``cllr`` and ``min_cllr`` of the fitted trials.

    Raises
    ------
    DataError
        When a kind of trial is missing, the scores are all equal, or
        they do not rank targets above non-targets (``a <= 0``: a model
        no better than chance cannot be calibrated).

    Example
    -------
    >>> cal = fit_logistic([0.9, 0.7, 0.4], [0.5, 0.2, 0.1])
    >>> cal.a > 0, cal.trials, cal.min_cllr <= cal.cllr
    (True, 6, True)
    """
    tar, non = _two_classes(tar, non)
    logit_p = logit(prior)
    scores = np.concatenate([tar, non])
    mean, std = scores.mean(), scores.std()
    if not std > 0:
        raise DataError("calibration needs scores that are not all equal")
    x = (scores - mean) / std  # standardized: a well-conditioned fit
    y = np.concatenate([np.ones(len(tar)), np.zeros(len(non))])
    w = np.where(y == 1, prior / len(tar), (1 - prior) / len(non))
    ridge = 1e-6
    design = np.stack([x, np.ones_like(x)], axis=1)

    def loss(theta: np.ndarray) -> float:
        z = design @ theta + logit_p
        ce = np.where(y == 1, _softplus(-z), _softplus(z))
        return float((w * ce).sum() + ridge * theta[0] ** 2)

    theta = np.zeros(2)
    current = loss(theta)
    for _ in range(max_iter):
        z = design @ theta + logit_p
        p = np.exp(-_softplus(-z))
        grad = design.T @ (w * (p - y)) + np.array([2 * ridge * theta[0], 0])
        hess = design.T @ (design * (w * p * (1 - p))[:, None])
        hess += np.diag([2 * ridge, 1e-12])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10:  # halve the step until the loss does not rise
            new = loss(theta - t * step)
            if new <= current:
                break
            t /= 2
        else:
            break
        theta = theta - t * step
        done = current - new < 1e-15 or np.abs(t * step).max() < 1e-10
        current = new
        if done:
            break
    a = float(theta[0] / std)
    b = float(theta[1] - theta[0] * mean / std)
    if not (math.isfinite(a) and a > 0):
        raise DataError(
            "the scores do not rank same-speaker trials above "
            f"different-speaker ones (fitted slope {a:.4g}); a model no "
            "better than chance cannot be calibrated"
        )
    cal = Calibration(
        a=a,
        b=b,
        prior=float(prior),
        fitted_on=str(fitted_on),
        trials=len(tar) + len(non),
        n_target=len(tar),
        n_nontarget=len(non),
    )
    return dataclasses.replace(
        cal,
        cllr=cllr(cal.llr(tar), cal.llr(non)),
        min_cllr=min_cllr(tar, non),
    )


def cllr(tar_llrs, non_llrs) -> float:
    """The log-likelihood-ratio cost of LLRs, in bits.

    ``(mean_tar log2(1 + exp(-llr)) + mean_non log2(1 + exp(llr))) / 2``:
    0 for a perfect, calibrated system; 1 for LLRs that are all 0.

    Example
    -------
    >>> cllr([0.0], [0.0])
    1.0
    >>> round(cllr([20.0, 30.0], [-25.0]), 6)
    0.0
    """
    tar, non = _two_classes(tar_llrs, non_llrs, allow_inf=True)
    bits = _softplus(-tar).mean() + _softplus(non).mean()
    return float(bits / (2 * math.log(2)))


def pav_llrs(tar, non) -> tuple[np.ndarray, np.ndarray]:
    """The best monotonic LLRs of scores on their own trials (PAV).

    Pool-adjacent-violators fits the non-decreasing function of the score
    that best predicts the labels (equal scores pooled first, so they get
    the same value); its posterior, with the trials' own prior taken out,
    is an LLR.  Those LLRs may be infinite (perfectly separated ends).

    Returns
    -------
    (tar_llrs, non_llrs)

    Example
    -------
    >>> t, n = pav_llrs([3.0, 1.0], [2.0, 0.0])
    >>> t.tolist(), n.tolist()
    ([inf, 0.0], [0.0, -inf])
    """
    tar, non = _two_classes(tar, non)
    scores = np.concatenate([tar, non])
    labels = np.concatenate([np.ones(len(tar)), np.zeros(len(non))])
    values, inverse = np.unique(scores, return_inverse=True)
    n_tar = np.bincount(inverse, weights=labels, minlength=len(values))
    n_all = np.bincount(inverse, minlength=len(values)).astype(np.float64)
    # blocks: [targets, trials, groups pooled]; merge while decreasing
    blocks: list[list[float]] = []
    for t, n in zip(n_tar, n_all, strict=True):
        blocks.append([t, n, 1])
        while (
            len(blocks) > 1
            and blocks[-2][0] * blocks[-1][1] >= blocks[-1][0] * blocks[-2][1]
        ):
            t2, n2, g2 = blocks.pop()
            blocks[-1][0] += t2
            blocks[-1][1] += n2
            blocks[-1][2] += g2
    group_p = np.concatenate([np.full(int(g), t / n) for t, n, g in blocks])
    p = group_p[inverse]
    with np.errstate(divide="ignore"):
        llr = np.log(p) - np.log1p(-p) - math.log(len(tar) / len(non))
    return llr[: len(tar)], llr[len(tar) :]


def min_cllr(tar, non) -> float:
    """Cllr after the best monotonic recalibration (:func:`pav_llrs`).

    ``cllr - min_cllr`` is what calibration loses; min-Cllr depends only
    on how the scores rank the trials.

    Example
    -------
    >>> min_cllr([0.9, 0.8], [0.1, 0.2])  # perfectly separated
    0.0
    >>> min_cllr([0.5, 0.5], [0.5, 0.5])  # no information
    1.0
    """
    return cllr(*pav_llrs(tar, non))


def far_threshold(non, far: float) -> float:
    """The lowest cosine threshold whose false-accept rate on ``non``
    (``score > threshold`` accepts) is at most ``far``.

    Example
    -------
    >>> non = np.arange(100) / 100  # 0.00 ... 0.99
    >>> thr = far_threshold(non, 0.05)
    >>> thr, float((non > thr).mean())
    (0.94, 0.05)
    """
    if not 0.0 < far < 1.0:
        raise ConfigError(f"a false-accept rate must lie in (0, 1), got {far}")
    non = np.sort(np.asarray(non, dtype=np.float64).ravel())[::-1]
    if len(non) == 0:
        raise DataError("a FAR threshold needs non-target trials")
    allowed = int(math.floor(far * len(non) + 1e-9))
    return float(non[min(allowed, len(non) - 1)])


def far_key(far: float) -> str:
    """The name of the operating point of a false-accept rate.

    Example
    -------
    >>> far_key(0.01), far_key(1e-3)
    ('far_0.01', 'far_0.001')
    """
    return f"far_{far:g}"


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """A cosine decision threshold and what it did where it was fitted.

    Attributes
    ----------
    name : str
        ``"eer"``, ``"far_0.01"``, ... or ``"threshold.json"`` (an export
        without operating points).
    threshold : float
        Accept as the same speaker when the cosine is above it.
    target_far : float, optional
        The false-accept rate asked for (None for the EER point).
    far, frr : float, optional
        The false-accept and false-reject rates measured on the trials it
        was fitted on.
    trials, n_target, n_nontarget : int
        How many trials, of each kind.
    fitted_on : str
        What trials.
    reliable : bool
        False when there were too few non-target trials to measure the
        target FAR (fewer than ``MIN_FALSE_ACCEPTS / far``).
    """

    name: str
    threshold: float
    target_far: float | None = None
    far: float | None = None
    frr: float | None = None
    trials: int = 0
    n_target: int = 0
    n_nontarget: int = 0
    fitted_on: str = ""
    reliable: bool = True

    def to_config(self) -> dict[str, Any]:
        """The entry of ``config.json``'s ``operating_points`` (without
        its name, which is its key)."""
        entry = dataclasses.asdict(self)
        del entry["name"]
        return entry

    def describe(self) -> str:
        """One line: the threshold and where it comes from.

        Example
        -------
        >>> OperatingPoint("far_0.01", 0.5, 0.01, 0.009, 0.2, 4000,
        ...                2000, 2000, "validation trials").describe()
        ... # doctest: +NORMALIZE_WHITESPACE
        'far_0.01 threshold 0.5000 (FAR 0.90%, FRR 20.00% on 4000
         validation trials)'
        """
        if self.far is None or self.frr is None:
            return f"{self.name} threshold {self.threshold:.4f}"
        where = f"{self.trials} {self.fitted_on or 'trials'}".rstrip()
        text = (
            f"{self.name} threshold {self.threshold:.4f} (FAR "
            f"{100 * self.far:.2f}%, FRR {100 * self.frr:.2f}% on {where})"
        )
        if not self.reliable:
            text += (
                f"; unreliable: {self.n_nontarget} non-target trials, "
                f"{_needed(self.target_far)} wanted"
            )
        return text


def _needed(far: float | None) -> int:
    return int(math.ceil(MIN_FALSE_ACCEPTS / far)) if far else 0


def far_point(tar, non, far: float, fitted_on: str = "") -> OperatingPoint:
    """The operating point of a target false-accept rate.

    Marked unreliable (with a logged warning) when there are fewer than
    ``MIN_FALSE_ACCEPTS / far`` non-target trials.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> p = far_point(rng.normal(1, 1, 500), rng.normal(0, 1, 2000), 0.01)
    >>> p.name, p.far <= 0.01, p.reliable
    ('far_0.01', True, True)
    """
    tar, non = _two_classes(tar, non)
    threshold = far_threshold(non, far)
    reliable = len(non) >= _needed(far)
    if not reliable:
        logger.warning(
            "FAR %g threshold fitted on %d non-target trials (%d wanted): "
            "marked unreliable",
            far,
            len(non),
            _needed(far),
        )
    return OperatingPoint(
        name=far_key(far),
        threshold=threshold,
        target_far=float(far),
        far=float((non > threshold).mean()),
        frr=float((tar <= threshold).mean()),
        trials=len(tar) + len(non),
        n_target=len(tar),
        n_nontarget=len(non),
        fitted_on=str(fitted_on),
        reliable=reliable,
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A same-speaker decision with what it rests on.

    Attributes
    ----------
    cosine : float
        The score.
    llr : float, optional
        Its calibrated log-likelihood ratio (None without calibration).
    posterior : float, optional
        P(same speaker) at ``prior`` (None without calibration).
    prior : float
        The prior of ``posterior``.
    point : OperatingPoint
        The threshold that decided.
    same_speaker : bool
        ``cosine > point.threshold``.
    """

    cosine: float
    llr: float | None
    posterior: float | None
    prior: float
    point: OperatingPoint
    same_speaker: bool


@dataclasses.dataclass(frozen=True)
class ScoreCalibration:
    """What an export knows about its scores: the calibration (or None)
    and its operating points, by name.

    Example
    -------
    >>> sc = ScoreCalibration(Calibration(10.0, -4.0),
    ...                       {"eer": OperatingPoint("eer", 0.4)})
    >>> v = sc.verdict(0.5, sc.select(None, stored=0.3))
    >>> v.llr, round(v.posterior, 4), v.point.name, v.same_speaker
    (1.0, 0.7311, 'eer', True)
    >>> ScoreCalibration.from_config(sc.to_config()) == sc
    True
    """

    calibration: Calibration | None = None
    points: Mapping[str, OperatingPoint] = dataclasses.field(
        default_factory=dict
    )

    def to_config(self) -> dict[str, Any]:
        """``config.json``'s ``calibration`` and ``operating_points``
        entries (only those it has)."""
        out: dict[str, Any] = {}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_config()
        if self.points:
            out["operating_points"] = {
                name: p.to_config() for name, p in self.points.items()
            }
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ScoreCalibration:
        """Reads an export's ``config.json`` (entries absent: None, no
        points; malformed: :class:`DataError`)."""
        config = config or {}
        entry = config.get("calibration")
        if entry is not None and not isinstance(entry, Mapping):
            raise DataError("config.json: calibration is not an object")
        cal = Calibration.from_config(entry) if entry else None
        raw = config.get("operating_points") or {}
        if not isinstance(raw, Mapping):
            raise DataError("config.json: operating_points is not an object")
        names = {f.name for f in dataclasses.fields(OperatingPoint)}
        points = {}
        for name, value in raw.items():
            try:
                fields = {k: v for k, v in value.items() if k in names}
                point = OperatingPoint(**{**fields, "name": str(name)})
                point = dataclasses.replace(
                    point, threshold=float(point.threshold)
                )
                ok = math.isfinite(point.threshold)
            except (AttributeError, TypeError, ValueError) as exc:
                raise DataError(
                    f"config.json: bad operating point {name!r}: {exc}"
                ) from None
            if not ok:
                raise DataError(
                    f"config.json: operating point {name!r} has no finite "
                    "threshold"
                )
            points[str(name)] = point
        # the EER point first, then the FARs from the largest
        order = sorted(points.values(), key=lambda p: -(p.target_far or 1))
        return cls(cal, {p.name: p for p in order})

    def available_fars(self) -> list[float]:
        """The target FARs of the stored points, largest first."""
        fars = [p.target_far for p in self.points.values() if p.target_far]
        return sorted(fars, reverse=True)

    def select(self, far: float | None, stored: float) -> OperatingPoint:
        """The operating point that decides.

        Arguments
        ---------
        far : float, optional
            A target false-accept rate; None: the EER point, or (an export
            without operating points) the ``stored`` threshold.
        stored : float
            The export's ``threshold.json`` threshold.

        Raises
        ------
        ConfigError
            When ``far`` is not one of the stored points, listing them.
        """
        if far is None:
            if "eer" in self.points:
                return self.points["eer"]
            return OperatingPoint(STORED_THRESHOLD, float(stored))
        for point in self.points.values():
            if point.target_far and math.isclose(
                point.target_far, far, rel_tol=1e-6
            ):
                if not point.reliable:
                    logger.warning("%s", point.describe())
                return point
        fars = self.available_fars()
        have = (
            f"available: {', '.join(f'{f:g}' for f in fars)}"
            if fars
            else "the model has no FAR operating points"
        )
        raise ConfigError(
            f"no operating point for FAR {far:g} ({have}); fit them on "
            "labelled trials with `verify.py --calibrate TRIALS`"
        )

    def llr(self, score: np.ndarray | float):
        """The calibrated LLR of scores, or None without calibration."""
        if self.calibration is None:
            return None
        return self.calibration.llr(score)

    def verdict(
        self,
        score: float,
        point: OperatingPoint,
        prior: float = DEFAULT_PRIOR,
    ) -> Verdict:
        """The decision on one cosine score at ``point``."""
        logit(prior)  # checks it
        llr = self.llr(float(score))
        return Verdict(
            cosine=float(score),
            llr=llr,
            posterior=None if llr is None else posterior(llr, prior),
            prior=float(prior),
            point=point,
            same_speaker=float(score) > point.threshold,
        )
