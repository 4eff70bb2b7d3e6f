"""Verification scoring: cosine trials, s-norm and EER / minDCF.

Trials are ``(label, enrol_utt, test_utt)`` tuples (``trials.txt``, see
``docs/DESIGN.md``) scored from a dict of utterance embeddings.  The error
metrics are SpeechBrain's :func:`speechbrain.utils.metric_stats.EER` and
:func:`~speechbrain.utils.metric_stats.minDCF`; for long trial lists (where
SpeechBrain's versions take minutes and gigabytes) an exact vectorized
equivalent with the same candidate thresholds and tie rules is used.
minDCF is reported normalized (:func:`compute_min_dcf`), as in NIST SRE
and VoxSRC results.

The project's two cosine functions are here: :func:`cosine_similarity`
(row-wise, broadcasting) and :func:`cosine_matrix` (all pairs).  The
evaluations built on them (a trials list, SAP / SAN of two speakers) are
in :mod:`deep_speaker_sb.evaluation`, the plots in
:mod:`deep_speaker_sb.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from speechbrain.utils.metric_stats import EER, minDCF

from deep_speaker_sb.calibration import (
    FAR_TARGETS,
    OperatingPoint,
    ScoreCalibration,
    far_point,
    fit_logistic,
)
from deep_speaker_sb.data.trials import Trial
from deep_speaker_sb.errors import DataError, MissingFileError
from deep_speaker_sb.utils import Pathlike, atomic_write

#: Up to this many scores in all, SpeechBrain's own EER / minDCF are used.
SPEECHBRAIN_METRICS_LIMIT = 5000


#: Up to this many utterance pairs, trials are read off the full cosine
#: matrix of the utterances (64 MB in float32).
PAIR_MATRIX_LIMIT = 16_000_000


#: Target priors reported by :func:`verification_metrics`.
P_TARGETS = (0.01, 0.05)


def read_trials(path: Pathlike) -> list[Trial]:
    """Reads a trials file: ``label enrol_utt test_utt`` per line.

    Arguments
    ---------
    path : Pathlike
        The trials file (blank lines are ignored).

    Returns
    -------
    list of (label, enrol_utt, test_utt)

    Raises
    ------
    MissingFileError
        When the file does not exist.
    DataError
        When a line is malformed or the file holds no trial.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "trials.txt"
    >>> _ = p.write_text("1 a_1 a_2\\n0 a_1 b_1\\n")
    >>> read_trials(p)
    [(1, 'a_1', 'a_2'), (0, 'a_1', 'b_1')]
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"trials file not found: {path}; prepare the data with "
            "data_prep.py (it writes trials.txt) or give --trials"
        )
    trials = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise DataError(
                    f"{path}:{n}: expected 'label enrol_utt test_utt' with "
                    f"label 0 or 1, got {line.strip()!r}"
                )
            trials.append((int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise DataError(
            f"trials file {path} holds no trial; re-run data_prep.py or "
            "give another file with --trials"
        )
    return trials


def _stack(
    ids: Sequence[str], embeddings: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    missing = [i for i in ids if i not in embeddings]
    if missing:
        raise KeyError(
            f"no embedding for {len(missing)} utterance(s), e.g. {missing[0]}"
        )
    return torch.stack([embeddings[i].flatten().float() for i in ids])


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity over the last dimension (row-wise, broadcasting).

    Arguments
    ---------
    a, b : torch.Tensor
        ``[..., D]`` tensors that broadcast against each other.

    Returns
    -------
    torch.Tensor
        ``[...]`` similarities (float32).

    Example
    -------
    >>> cosine_similarity(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 2.0]))
    tensor(0.7071)
    >>> cosine_similarity(torch.eye(2), torch.tensor([[3.0, 0.0]]))
    tensor([1., 0.])
    """
    return torch.nn.functional.cosine_similarity(
        a.float(), b.float(), dim=-1, eps=1e-8
    )


def cosine_matrix(
    a: torch.Tensor, b: torch.Tensor | None = None
) -> torch.Tensor:
    """All-pairs cosine similarity: ``[N, D] x [M, D] -> [N, M]``.

    Arguments
    ---------
    a : torch.Tensor
        ``[N, D]``.
    b : torch.Tensor, optional
        ``[M, D]``; by default ``a`` itself (``[N, N]``, ones on the
        diagonal).

    Returns
    -------
    torch.Tensor
        ``[N, M]`` similarities (float32).

    Example
    -------
    >>> cosine_matrix(torch.eye(2), torch.tensor([[3.0, 0.0]]))
    tensor([[1.],
            [0.]])
    >>> cosine_matrix(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    tensor([[1., 0.],
            [0., 1.]])
    """
    a = torch.nn.functional.normalize(a.float(), dim=-1, eps=1e-8)
    if b is None:
        return a @ a.T
    b = torch.nn.functional.normalize(b.float(), dim=-1, eps=1e-8)
    return a @ b.T


def score_trials(
    trials: Sequence[Trial],
    embeddings: Mapping[str, torch.Tensor],
    batch_size: int = 65536,
) -> torch.Tensor:
    """Cosine scores of trials from precomputed utterance embeddings.

    Arguments
    ---------
    trials : sequence of (label, enrol_utt, test_utt)
        The trials to score.
    embeddings : mapping
        Utterance id -> embedding ``[D]`` (or ``[1, D]``).
    batch_size : int
        Trials scored per step when there are too many utterances for
        their full cosine matrix (bounds the memory used).

    Returns
    -------
    torch.Tensor
        ``[len(trials)]`` cosine similarities.

    Example
    -------
    >>> emb = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0])}
    >>> score_trials([(1, "a", "a"), (0, "a", "b")], emb)
    tensor([1., 0.])
    """
    if not trials:
        return torch.empty(0)
    ids = sorted({u for _, a, b in trials for u in (a, b)})
    index = {u: i for i, u in enumerate(ids)}
    stacked = _stack(ids, embeddings)
    enrol = torch.tensor([index[t[1]] for t in trials], dtype=torch.long)
    test = torch.tensor([index[t[2]] for t in trials], dtype=torch.long)
    if len(ids) ** 2 <= PAIR_MATRIX_LIMIT:  # all pairs at once is cheaper
        return cosine_matrix(stacked)[enrol, test]
    matrix = torch.nn.functional.normalize(stacked, dim=-1, eps=1e-8)
    out = []
    for i in range(0, len(trials), batch_size):
        a = matrix[enrol[i : i + batch_size]]
        b = matrix[test[i : i + batch_size]]
        out.append((a * b).sum(dim=-1))
    return torch.cat(out)


def snorm_scores(
    trials: Sequence[Trial],
    embeddings: Mapping[str, torch.Tensor],
    cohort: torch.Tensor,
    top_n: int | None = None,
) -> torch.Tensor:
    """Symmetric score normalization (s-norm) of cosine trial scores.

    Each raw score ``s(e, t)`` becomes the mean of its z-normalizations
    against the cohort scores of the enrolment and of the test side:
    ``((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2``.  With ``top_n``
    (adaptive s-norm), each side's statistics use only its ``top_n``
    highest cohort scores.

    Arguments
    ---------
    trials : sequence of (label, enrol_utt, test_utt)
        The trials to score.
    embeddings : mapping
        Utterance id -> embedding.
    cohort : torch.Tensor
        ``[N, D]`` embeddings of impostor utterances (other speakers).
    top_n : int, optional
        Use only the ``top_n`` closest cohort entries per side.

    Returns
    -------
    torch.Tensor
        ``[len(trials)]`` normalized scores.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> emb = {k: torch.randn(8, generator=g) for k in "abc"}
    >>> cohort = torch.randn(20, 8, generator=g)
    >>> trials = [(1, "a", "b"), (0, "a", "c")]
    >>> snorm_scores(trials, emb, cohort).shape
    torch.Size([2])
    >>> snorm_scores(trials, emb, cohort, top_n=5).shape
    torch.Size([2])
    """
    if cohort.ndim != 2 or cohort.shape[0] < 2:
        raise DataError("s-norm needs a cohort of at least 2 embeddings")
    raw = score_trials(trials, embeddings)
    ids = sorted({u for _, a, b in trials for u in (a, b)})
    index = {u: i for i, u in enumerate(ids)}
    cohort_scores = cosine_matrix(_stack(ids, embeddings), cohort)
    if top_n is not None and 0 < top_n < cohort.shape[0]:
        cohort_scores = cohort_scores.topk(top_n, dim=1).values
    mean = cohort_scores.mean(dim=1)
    std = cohort_scores.std(dim=1).clamp(min=1e-6)
    e = torch.tensor([index[t[1]] for t in trials], dtype=torch.long)
    t = torch.tensor([index[t[2]] for t in trials], dtype=torch.long)
    return 0.5 * ((raw - mean[e]) / std[e] + (raw - mean[t]) / std[t])


def pair_scores(
    emb_a: torch.Tensor, emb_b: torch.Tensor | None = None
) -> torch.Tensor:
    """Cosine similarities of utterance pairs of one or two speakers.

    With ``emb_b``: every A x B pair (SAN, the anchor-negative similarity
    when A and B are different speakers).  Without: every pair ``i < j`` of
    distinct utterances of A (SAP, the anchor-positive similarity).

    Arguments
    ---------
    emb_a : torch.Tensor
        ``[Na, D]`` embeddings of speaker A's utterances.
    emb_b : torch.Tensor, optional
        ``[Nb, D]`` embeddings of speaker B's utterances.

    Returns
    -------
    torch.Tensor
        ``[Na * Nb]`` or ``[Na * (Na - 1) / 2]`` similarities.

    Example
    -------
    >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> pair_scores(a)  # (0, 1), (0, 2), (1, 2)
    tensor([0.0000, 0.7071, 0.7071])
    >>> pair_scores(a[:1], torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    tensor([ 1., -1.])
    """
    if emb_b is not None:
        return cosine_matrix(emb_a, emb_b).flatten()
    if len(emb_a) < 2:
        raise DataError("same-speaker pairs need at least 2 utterances")
    i, j = torch.triu_indices(len(emb_a), len(emb_a), offset=1)
    return cosine_matrix(emb_a)[i, j]


def split_scores(
    labels: Sequence[int] | torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target and non-target scores of labelled trials.

    Raises
    ------
    DataError
        When one of the two kinds is missing (no EER without both).

    Example
    -------
    >>> split_scores([1, 0, 1], torch.tensor([0.9, 0.2, 0.8]))
    (tensor([0.9000, 0.8000]), tensor([0.2000]))
    """
    labels = torch.as_tensor(labels).bool().flatten()
    scores = torch.as_tensor(scores).float().flatten()
    if labels.shape != scores.shape:
        raise ValueError("labels and scores differ in length")
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise DataError(
            "EER / minDCF need both target and non-target trials "
            f"(got {len(pos)} target, {len(neg)} non-target)"
        )
    return pos, neg


def _rates(
    pos: torch.Tensor, neg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SpeechBrain's candidate thresholds with their miss / false alarm."""
    thresholds = torch.unique(torch.cat([pos, neg]))  # sorted
    mid = (thresholds[:-1] + thresholds[1:]) / 2
    thresholds, _ = torch.sort(torch.cat([thresholds, mid]))
    pos_sorted, _ = torch.sort(pos)
    neg_sorted, _ = torch.sort(neg)
    n_miss = torch.searchsorted(pos_sorted, thresholds, right=True)
    n_accept = torch.searchsorted(neg_sorted, thresholds, right=True)
    p_miss = n_miss.float() / len(pos)
    p_fa = (len(neg) - n_accept).float() / len(neg)
    return thresholds, p_miss, p_fa


def compute_eer(pos: torch.Tensor, neg: torch.Tensor) -> tuple[float, float]:
    """Equal error rate and its threshold (``score > threshold`` accepts).

    Arguments
    ---------
    pos, neg : torch.Tensor
        Target and non-target scores.

    Returns
    -------
    (eer, threshold) : tuple of float
        EER as a fraction in [0, 1].

    Example
    -------
    >>> pos = torch.tensor([0.9, 0.8, 0.7, 0.3])
    >>> neg = torch.tensor([0.6, 0.4, 0.2, 0.1])
    >>> eer, thr = compute_eer(pos, neg)
    >>> round(eer, 4), round(thr, 4)
    (0.25, 0.4)
    """
    pos, neg = pos.float().flatten(), neg.float().flatten()
    if len(pos) + len(neg) <= SPEECHBRAIN_METRICS_LIMIT:
        return EER(pos, neg)
    thresholds, p_miss, p_fa = _rates(pos, neg)
    i = int(torch.argmin((p_fa.double() - p_miss.double()).abs()))
    return float((p_fa[i] + p_miss[i]) / 2), float(thresholds[i])


def compute_min_dcf(
    pos: torch.Tensor,
    neg: torch.Tensor,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    normalize: bool = True,
) -> tuple[float, float]:
    """Minimum detection cost and its threshold.

    Normalized by default, as NIST SRE and VoxSRC report it: the raw cost
    ``c_miss p_miss p_target + c_fa p_fa (1 - p_target)`` (SpeechBrain's
    ``minDCF``, ``normalize=False``) divided by the cost of the better
    trivial system, ``min(c_miss p_target, c_fa (1 - p_target))``; 1.0 is
    no better than always answering "different speaker".

    Example
    -------
    >>> pos = torch.tensor([0.9, 0.8, 0.7, 0.3])
    >>> neg = torch.tensor([0.6, 0.4, 0.2, 0.1])
    >>> dcf, thr = compute_min_dcf(pos, neg, p_target=0.5, normalize=False)
    >>> round(dcf, 4)
    0.125
    >>> round(compute_min_dcf(pos, neg, p_target=0.5)[0], 4)
    0.25
    """
    pos, neg = pos.float().flatten(), neg.float().flatten()
    if len(pos) + len(neg) <= SPEECHBRAIN_METRICS_LIMIT:
        c_min, thr = minDCF(
            pos, neg, c_miss=c_miss, c_fa=c_fa, p_target=p_target
        )
        c_min, thr = float(c_min), float(thr)
    else:
        thresholds, p_miss, p_fa = _rates(pos, neg)
        c_det = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
        c_min_t, i = torch.min(c_det, dim=0)
        c_min, thr = float(c_min_t), float(thresholds[i])
    if normalize:
        c_min /= min(c_miss * p_target, c_fa * (1 - p_target))
    return c_min, thr


def verification_metrics(
    labels: Sequence[int] | torch.Tensor, scores: torch.Tensor
) -> dict[str, float]:
    """EER and minDCF (p_target 0.01 and 0.05) of scored trials.

    Arguments
    ---------
    labels : sequence of int
        1 for a target (same speaker) trial, 0 otherwise.
    scores : torch.Tensor
        One score per trial, higher meaning "same speaker".

    Returns
    -------
    dict
        ``eer`` (fraction), ``eer_threshold``, ``min_dcf_0.01`` (normalized,
        see :func:`compute_min_dcf`), ``min_dcf_0.01_threshold``, the same
        for 0.05, ``n_target``, ``n_nontarget``.

    Example
    -------
    >>> m = verification_metrics([1, 1, 0, 0], torch.tensor([.9, .2, .5, .1]))
    >>> m["eer"], m["n_target"], m["n_nontarget"]
    (0.5, 2, 2)
    """
    pos, neg = split_scores(labels, scores)
    eer, eer_thr = compute_eer(pos, neg)
    out = {
        "eer": eer,
        "eer_threshold": eer_thr,
        "n_target": len(pos),
        "n_nontarget": len(neg),
    }
    for p in P_TARGETS:
        dcf, thr = compute_min_dcf(pos, neg, p_target=p)
        out[f"min_dcf_{p}"] = dcf
        out[f"min_dcf_{p}_threshold"] = thr
    return out


def write_scores(
    path: Pathlike, trials: Sequence[Trial], scores: torch.Tensor
) -> None:
    """Writes ``enrol_utt test_utt label score`` per line, atomically.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "scores.txt"
    >>> write_scores(p, [(1, "a", "b")], torch.tensor([0.5]))
    >>> p.read_text()
    'a b 1 0.500000\\n'
    """
    if len(trials) != len(scores):
        raise ValueError("trials and scores differ in length")
    with atomic_write(path) as f:
        for (label, a, b), s in zip(trials, scores.tolist(), strict=True):
            f.write(f"{a} {b} {label} {s:.6f}\n")


def read_scores(path: Pathlike) -> tuple[list[Trial], torch.Tensor]:
    """Reads what :func:`write_scores` wrote: the trials and their scores.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "scores.txt"
    >>> write_scores(p, [(1, "a", "b"), (0, "a", "c")],
    ...              torch.tensor([0.5, -0.25]))
    >>> read_scores(p)
    ([(1, 'a', 'b'), (0, 'a', 'c')], tensor([ 0.5000, -0.2500]))
    """
    trials, scores = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        enrol, test, label, score = line.split()
        trials.append((int(label), enrol, test))
        scores.append(float(score))
    return trials, torch.tensor(scores)


def threshold_rates(
    labels: Sequence[int] | torch.Tensor,
    scores: torch.Tensor,
    threshold: float,
) -> dict[str, float]:
    """False reject and false accept rates when ``score > threshold``
    accepts.

    Example
    -------
    >>> threshold_rates([1, 1, 0, 0], torch.tensor([.9, .2, .5, .1]), 0.3)
    {'false_reject_rate': 0.5, 'false_accept_rate': 0.5}
    """
    pos, neg = split_scores(labels, scores)
    return {
        "false_reject_rate": float((pos <= threshold).float().mean()),
        "false_accept_rate": float((neg > threshold).float().mean()),
    }


def calibrate(
    labels: Sequence[int] | torch.Tensor,
    scores: torch.Tensor,
    fitted_on: str,
    fars: Sequence[float] = FAR_TARGETS,
) -> ScoreCalibration:
    """Calibration and operating points fitted on labelled cosine scores.

    The LLR map is :func:`~deep_speaker_sb.calibration.fit_logistic`'s
    (at prior 0.5); the EER point is :func:`compute_eer`'s threshold, the
    FAR points :func:`~deep_speaker_sb.calibration.far_point`'s, each with
    the rates measured on these trials.

    Arguments
    ---------
    labels : sequence of int
        1 for a target trial, 0 otherwise.
    scores : torch.Tensor
        Their cosine scores (trials the model did not train on).
    fitted_on : str
        What trials, recorded with the result (``"validation trials"``,
        a trials file).
    fars : sequence of float
        The target false-accept rates of the FAR points.

    Returns
    -------
    ScoreCalibration
        ``calibration`` and ``points`` (``eer``, ``far_0.01``, ...).

    Raises
    ------
    DataError
        When a kind of trial is missing or the scores do not rank targets
        above non-targets.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> scores = torch.cat([torch.randn(500, generator=g) * 0.1 + 0.6,
    ...                     torch.randn(1500, generator=g) * 0.1 + 0.2])
    >>> sc = calibrate([1] * 500 + [0] * 1500, scores, "demo", fars=[0.01])
    >>> sorted(sc.points), sc.calibration.trials
    (['eer', 'far_0.01'], 2000)
    >>> sc.points["far_0.01"].far <= 0.01
    True
    """
    pos, neg = split_scores(labels, scores)
    tar, non = pos.double().numpy(), neg.double().numpy()
    cal = fit_logistic(tar, non, fitted_on=fitted_on)
    _, eer_threshold = compute_eer(pos, neg)
    rates = threshold_rates(labels, scores, eer_threshold)
    points = {
        "eer": OperatingPoint(
            name="eer",
            threshold=float(eer_threshold),
            far=rates["false_accept_rate"],
            frr=rates["false_reject_rate"],
            trials=len(tar) + len(non),
            n_target=len(tar),
            n_nontarget=len(non),
            fitted_on=fitted_on,
        )
    }
    for far in fars:
        point = far_point(tar, non, far, fitted_on)
        points[point.name] = point
    return ScoreCalibration(cal, points)


def det_curve(
    labels: Sequence[int] | torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Miss and false-alarm probabilities over all thresholds.

    Returns
    -------
    (p_miss, p_fa) : tuple of torch.Tensor
        Same length, p_miss rising and p_fa falling with the threshold.

    Example
    -------
    >>> p_miss, p_fa = det_curve([1, 0], torch.tensor([0.9, 0.1]))
    >>> float(p_miss.min()), float(p_fa.min())
    (0.0, 0.0)
    """
    pos, neg = split_scores(labels, scores)
    _, p_miss, p_fa = _rates(pos, neg)
    return p_miss, p_fa


def summarize(values: torch.Tensor) -> dict[str, float]:
    """Mean, std (unbiased, 0 for one value), min, max and count.

    Example
    -------
    >>> summarize(torch.tensor([1.0, 3.0]))
    {'mean': 2.0, 'std': 1.4142135623730951, 'min': 1.0, 'max': 3.0, 'n': 2}
    """
    values = values.double().flatten()
    if len(values) == 0:
        raise ValueError("nothing to summarize")
    std = float(values.std()) if len(values) > 1 else 0.0
    return {
        "mean": float(values.mean()),
        "std": std if math.isfinite(std) else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "n": len(values),
    }
