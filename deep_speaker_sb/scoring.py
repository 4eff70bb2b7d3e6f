"""Verification scoring: cosine trials, s-norm, EER / minDCF and plots.

Trials are ``(label, enrol_utt, test_utt)`` tuples (``trials.txt``, see
``docs/DESIGN.md``) scored from a dict of utterance embeddings.  The error
metrics are SpeechBrain's :func:`speechbrain.utils.metric_stats.EER` and
:func:`~speechbrain.utils.metric_stats.minDCF`; for long trial lists (where
SpeechBrain's versions take minutes and gigabytes) an exact vectorized
equivalent with the same candidate thresholds and tie rules is used.

:func:`evaluate_trials` is the whole trials evaluation of ``verify.py``
(embeddings, optional s-norm against a :func:`draw_cohort` cohort, metrics
and the report) and :func:`speaker_pair_statistics` its SAP / SAN mode.
The project's two cosine functions are here: :func:`cosine_similarity`
(row-wise, broadcasting) and :func:`cosine_matrix` (all pairs).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from speechbrain.utils.metric_stats import EER, minDCF

from deep_speaker_sb.data.trials import Trial
from deep_speaker_sb.dataio import (
    Utterance,
    read_manifest,
    speaker_utterances,
    utterances,
)
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.utils import Pathlike, atomic_write, write_json

#: Up to this many scores in all, SpeechBrain's own EER / minDCF are used.
SPEECHBRAIN_METRICS_LIMIT = 5000

#: Up to this many utterance pairs, trials are read off the full cosine
#: matrix of the utterances (64 MB in float32).
PAIR_MATRIX_LIMIT = 16_000_000

#: Target priors reported by :func:`verification_metrics`.
P_TARGETS = (0.01, 0.05)


class Embedder(Protocol):
    """What the evaluations need of a model (e.g. ``DeepSpeaker``): its
    decision threshold on cosine similarity and batched file embedding."""

    threshold: float

    def encode_files(
        self, paths: Sequence[Pathlike], batch_size: int = 32
    ) -> torch.Tensor:
        """``[len(paths), emb_dim]`` embeddings of audio files."""
        ...


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


def _split(
    labels: Sequence[int] | torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
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
) -> tuple[float, float]:
    """Minimum detection cost (not normalized, as SpeechBrain's ``minDCF``).

    Example
    -------
    >>> pos = torch.tensor([0.9, 0.8, 0.7, 0.3])
    >>> neg = torch.tensor([0.6, 0.4, 0.2, 0.1])
    >>> dcf, thr = compute_min_dcf(pos, neg, p_target=0.5)
    >>> round(dcf, 4)
    0.125
    """
    pos, neg = pos.float().flatten(), neg.float().flatten()
    if len(pos) + len(neg) <= SPEECHBRAIN_METRICS_LIMIT:
        return minDCF(pos, neg, c_miss=c_miss, c_fa=c_fa, p_target=p_target)
    thresholds, p_miss, p_fa = _rates(pos, neg)
    c_det = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    c_min, i = torch.min(c_det, dim=0)
    return float(c_min), float(thresholds[i])


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
        ``eer`` (fraction), ``eer_threshold``, ``min_dcf_0.01``,
        ``min_dcf_0.01_threshold``, the same for 0.05, ``n_target``,
        ``n_nontarget``.

    Example
    -------
    >>> m = verification_metrics([1, 1, 0, 0], torch.tensor([.9, .2, .5, .1]))
    >>> m["eer"], m["n_target"], m["n_nontarget"]
    (0.5, 2, 2)
    """
    pos, neg = _split(labels, scores)
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
    pos, neg = _split(labels, scores)
    return {
        "false_reject_rate": float((pos <= threshold).float().mean()),
        "false_accept_rate": float((neg > threshold).float().mean()),
    }


def load_trials(
    trials_path: Pathlike, csv_path: Pathlike
) -> tuple[list[Trial], dict[str, Utterance]]:
    """A trials file and the manifest utterances its trials name.

    Arguments
    ---------
    trials_path : Pathlike
        ``label enrol_utt test_utt`` per line (:func:`read_trials`).
    csv_path : Pathlike
        The prepared manifest of those utterances (``test.csv``).

    Returns
    -------
    (trials, utterances)
        The trials and the utterances they name, sorted by id.

    Raises
    ------
    MissingFileError
        When a file, or audio the manifest names, is missing.
    DataError
        When a file is malformed or a trial names an utterance that is not
        in the manifest.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "trials.txt").write_text("0 b a\\n")
    >>> _ = (d / "test.csv").write_text(
    ...     "ID,duration,wav,start,stop,spk_id\\n"
    ...     "a_0,1.0,{data_root}/a.wav,0,8000,A\\n"
    ...     "b_0,1.0,{data_root}/b.wav,0,8000,B\\n"
    ...     "c_0,1.0,{data_root}/c.wav,0,8000,C\\n")
    >>> for name in "abc":
    ...     _ = (d / f"{name}.wav").write_bytes(b"")
    >>> trials, utts = load_trials(d / "trials.txt", d / "test.csv")
    >>> trials, list(utts)
    ([(0, 'b', 'a')], ['a', 'b'])
    """
    trials = read_trials(trials_path)
    utts = utterances(read_manifest(csv_path))
    needed = sorted({u for _, e, t in trials for u in (e, t)})
    unknown = [u for u in needed if u not in utts]
    if unknown:
        raise DataError(
            f"{len(unknown)} trial utterance(s) of {trials_path} are not in "
            f"{csv_path} (e.g. {unknown[0]}); give the matching --csv"
        )
    return trials, {u: utts[u] for u in needed}


@dataclasses.dataclass(frozen=True)
class Cohort:
    """The impostor utterances of s-norm, drawn by :func:`draw_cohort`.

    Attributes
    ----------
    csv : Path
        The manifest they were drawn from.
    seed : int
        The seed of the draw.
    utterances : list of Utterance
        The drawn utterances.
    """

    csv: Path
    seed: int
    utterances: list[Utterance]


def draw_cohort(
    csv_path: Pathlike,
    size: int,
    seed: int = 0,
    exclude: Sequence[str] = (),
) -> Cohort:
    """Draws an s-norm cohort from a manifest (usually ``train.csv``).

    Arguments
    ---------
    csv_path : Pathlike
        The manifest to draw from.
    size : int
        Utterances wanted (at least 2; all of them when there are fewer).
    seed : int
        Seed of the draw: the same arguments give the same cohort.
    exclude : sequence of str
        Utterance ids never drawn (the trial utterances).

    Returns
    -------
    Cohort

    Raises
    ------
    ConfigError
        When ``size`` is below 2.
    DataError
        When fewer than 2 utterances are left to draw from.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "train.csv").write_text(
    ...     "ID,duration,wav,start,stop,spk_id\\n" + "".join(
    ...         f"u{i}_0,1.0,{{data_root}}/u{i}.wav,0,8000,S{i}\\n"
    ...         for i in range(5)))
    >>> for i in range(5):
    ...     _ = (d / f"u{i}.wav").write_bytes(b"")
    >>> cohort = draw_cohort(d / "train.csv", 3, exclude=["u0"])
    >>> len(cohort.utterances), "u0" in [u.utt_id for u in cohort.utterances]
    (3, False)
    >>> cohort == draw_cohort(d / "train.csv", 3, exclude=["u0"])
    True
    """
    if size < 2:
        raise ConfigError("--cohort_size must be at least 2")
    utts = utterances(read_manifest(csv_path))
    skip = set(exclude)
    pool = sorted(u for u in utts if u not in skip)
    if len(pool) < 2:
        raise DataError(f"s-norm needs 2+ cohort utterances in {csv_path}")
    chosen = random.Random(seed).sample(pool, min(size, len(pool)))
    return Cohort(Path(csv_path), seed, [utts[u] for u in chosen])


def _embed(
    model: Embedder, utts: Sequence[Utterance], batch_size: int
) -> torch.Tensor:
    return model.encode_files([u.wav for u in utts], batch_size=batch_size)


@dataclasses.dataclass(frozen=True)
class TrialsEvaluation:
    """What :func:`evaluate_trials` returns.

    Attributes
    ----------
    trials : list of (label, enrol_utt, test_utt)
        The scored trials.
    scores : torch.Tensor
        ``[len(trials)]`` scores: cosine similarity, or s-norm scores.
    report : dict
        The ``report.json`` content (see :func:`evaluate_trials`).
    """

    trials: list[Trial]
    scores: torch.Tensor
    report: dict[str, Any]

    @property
    def snorm(self) -> bool:
        """Whether the scores are s-norm scores."""
        return "snorm" in self.report


def evaluate_trials(
    model: Embedder,
    trials: Sequence[Trial],
    utts: Mapping[str, Utterance],
    *,
    cohort: Cohort | None = None,
    top_n: int | None = None,
    batch_size: int = 32,
    info: Mapping[str, Any] | None = None,
) -> TrialsEvaluation:
    """Embeds the trial utterances, scores the trials and reports.

    Arguments
    ---------
    model : Embedder
        The model (its ``threshold`` is the cosine decision threshold).
    trials : sequence of (label, enrol_utt, test_utt)
        The trials (both target and non-target ones).
    utts : mapping
        Utterance id -> :class:`~deep_speaker_sb.dataio.Utterance`, for
        every utterance of the trials (see :func:`load_trials`).
    cohort : Cohort, optional
        With a cohort, the scores are s-normed against it
        (:func:`snorm_scores`).
    top_n : int, optional
        Adaptive s-norm: only the ``top_n`` closest cohort scores.
    batch_size : int
        Files embedded per batch.
    info : mapping, optional
        Extra report entries (e.g. the model, manifest and trials paths).

    Returns
    -------
    TrialsEvaluation
        The trials, their scores and the report: ``info``, ``n_trials``,
        ``n_utterances``, ``embedding_seconds``, ``threshold``, the
        metrics of :func:`verification_metrics` on the scores,
        ``at_threshold`` (:func:`threshold_rates` of the cosine scores at
        the model's threshold), ``score`` (``"cosine similarity"`` or
        ``"s-norm"``) and, with a cohort, ``raw`` (the cosine metrics) and
        ``snorm`` (``cohort_size``, ``top_n``, ``seed``).

    Example
    -------
    >>> class Fake:  # embeds "<spk>_<n>.wav" as a vector of its speaker
    ...     threshold = 0.5
    ...     def encode_files(self, paths, batch_size=32):
    ...         return torch.stack([torch.eye(2)[int(str(p)[0])]
    ...                             for p in paths])
    >>> utts = {u: Utterance(u, u[0], f"{u}.wav")
    ...         for u in ("0_a", "0_b", "1_a")}
    >>> trials = [(1, "0_a", "0_b"), (0, "0_a", "1_a")]
    >>> result = evaluate_trials(Fake(), trials, utts)
    >>> result.scores
    tensor([1., 0.])
    >>> result.report["eer"], result.report["at_threshold"]
    (0.0, {'false_reject_rate': 0.0, 'false_accept_rate': 0.0})
    """
    needed = sorted({u for _, e, t in trials for u in (e, t)})
    start = time.perf_counter()
    embs = _embed(model, [utts[u] for u in needed], batch_size)
    seconds = time.perf_counter() - start
    embeddings = dict(zip(needed, embs, strict=True))
    raw = score_trials(trials, embeddings)
    labels = [label for label, _, _ in trials]
    report: dict[str, Any] = {
        **(info or {}),
        "n_trials": len(trials),
        "n_utterances": len(needed),
        "embedding_seconds": round(seconds, 3),
        "threshold": model.threshold,
    }
    raw_metrics = verification_metrics(labels, raw)
    report["at_threshold"] = threshold_rates(labels, raw, model.threshold)
    scores, metrics = raw, raw_metrics
    if cohort is not None:
        cohort_embs = _embed(model, cohort.utterances, batch_size)
        scores = snorm_scores(trials, embeddings, cohort_embs, top_n)
        metrics = verification_metrics(labels, scores)
        report["raw"] = raw_metrics
        report["snorm"] = {
            "cohort_size": len(cohort_embs),
            "top_n": top_n,
            "seed": cohort.seed,
        }
    report.update(metrics)
    report["score"] = "cosine similarity" if cohort is None else "s-norm"
    return TrialsEvaluation(list(trials), scores, report)


#: The files :func:`write_evaluation` writes, in the order it lists them.
EVALUATION_FILES = ("scores.txt", "report.json", "score_hist.png", "det.png")


def write_evaluation(out: Pathlike, result: TrialsEvaluation) -> list[Path]:
    """Writes ``scores.txt``, ``report.json`` and the score plots.

    Arguments
    ---------
    out : Pathlike
        The output folder (created when missing).
    result : TrialsEvaluation
        What :func:`evaluate_trials` returned.

    Returns
    -------
    list of Path
        The files, in the order of :data:`EVALUATION_FILES`.

    Example
    -------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> result = TrialsEvaluation(
    ...     [(1, "a", "b"), (0, "a", "c")], torch.tensor([0.9, 0.1]),
    ...     {"threshold": 0.5, "eer": 0.0})
    >>> [p.name for p in write_evaluation(out, result)] == list(
    ...     EVALUATION_FILES)
    True
    """
    out = Path(out)
    paths = [out / name for name in EVALUATION_FILES]
    scores_txt, report_json, hist_png, det_png = paths
    labels = [label for label, _, _ in result.trials]
    kind = "s-norm score" if result.snorm else "cosine similarity"
    out.mkdir(parents=True, exist_ok=True)
    write_scores(scores_txt, result.trials, result.scores)
    plot_score_histograms(
        labels,
        result.scores,
        hist_png,
        threshold=None if result.snorm else result.report["threshold"],
        title=f"{kind}: {len(result.trials)} trials",
    )
    plot_det(
        labels,
        result.scores,
        det_png,
        title=f"DET ({kind}), EER {100 * result.report['eer']:.2f}%",
    )
    write_json(report_json, result.report)
    return paths


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
    pos, neg = _split(labels, scores)
    _, p_miss, p_fa = _rates(pos, neg)
    return p_miss, p_fa


def _probit(p: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.special.ndtri(p.double().clamp(eps, 1 - eps))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Pathlike) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def plot_score_histograms(
    labels: Sequence[int] | torch.Tensor,
    scores: torch.Tensor,
    path: Pathlike,
    threshold: float | None = None,
    title: str = "Trial scores",
) -> Path:
    """Target / non-target score histograms, saved as a PNG (atomically).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "hist.png"
    >>> _ = plot_score_histograms([1, 1, 0, 0], torch.tensor([.9, .7, .2, .4]),
    ...                           p, threshold=0.5)
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    plt = _pyplot()
    pos, neg = _split(labels, scores)
    lo = float(torch.cat([pos, neg]).min())
    hi = float(torch.cat([pos, neg]).max())
    bins = torch.linspace(lo, hi if hi > lo else lo + 1e-3, 41).numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.hist(
            neg.numpy(),
            bins=bins,
            alpha=0.6,
            density=True,
            label=f"non-target ({len(neg)})",
        )
        ax.hist(
            pos.numpy(),
            bins=bins,
            alpha=0.6,
            density=True,
            label=f"target ({len(pos)})",
        )
        if threshold is not None:
            ax.axvline(
                threshold,
                color="k",
                linestyle="--",
                label=f"threshold {threshold:.3f}",
            )
        ax.set_xlabel("score")
        ax.set_ylabel("density")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_det(
    labels: Sequence[int] | torch.Tensor,
    scores: torch.Tensor,
    path: Pathlike,
    title: str = "DET curve",
) -> Path:
    """DET curve (miss vs. false alarm on probit axes), saved as a PNG.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "det.png"
    >>> _ = plot_det([1, 1, 0, 0], torch.tensor([.9, .3, .5, .1]), p)
    >>> p.stat().st_size > 0
    True
    """
    plt = _pyplot()
    labels_t = torch.as_tensor(labels).bool().flatten()
    n = min(int(labels_t.sum()), int((~labels_t).sum()))
    eps = 0.5 / max(n, 1)
    p_miss, p_fa = det_curve(labels, scores)
    eer = verification_metrics(labels, scores)["eer"]
    top = 0.5 if eer < 0.3 else 0.9  # upper axis limit
    ticks = [
        t
        for t in (
            0.001,
            0.002,
            0.005,
            0.01,
            0.02,
            0.05,
            0.1,
            0.2,
            0.4,
            0.6,
            0.8,
        )
        if eps <= t <= top
    ]
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        ax.plot(
            _probit(p_fa, eps).numpy(),
            _probit(p_miss, eps).numpy(),
            label="system",
        )
        ax.plot(
            *[float(_probit(torch.tensor([eer]), eps))] * 2,
            "o",
            label=f"EER {100 * eer:.2f}%",
        )
        pos = _probit(torch.tensor(ticks), eps).numpy()
        names = [f"{100 * t:g}" for t in ticks]
        ax.set_xticks(pos, names)
        ax.set_yticks(pos, names)
        lim = float(_probit(torch.tensor([top]), eps))
        low = float(_probit(torch.tensor([eps]), eps))
        ax.set_xlim(low, lim)
        ax.set_ylim(low, lim)
        ax.set_xlabel("false alarm probability (%)")
        ax.set_ylabel("miss probability (%)")
        ax.set_title(title)
        ax.grid(True, alpha=0.4)
        ax.legend(loc="lower left")
        fig.tight_layout()
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


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


def pair_statistics(scores: torch.Tensor, threshold: float) -> dict[str, Any]:
    """SAP / SAN statistics of pair scores at a decision threshold.

    Returns
    -------
    dict
        ``similarity`` and ``distance`` (``1 - similarity``): the
        :func:`summarize` dicts; ``n`` pairs; ``accepted``: pairs with a
        score above ``threshold``; ``threshold``.

    Example
    -------
    >>> stats = pair_statistics(torch.tensor([0.9, 0.2, 0.7]), 0.5)
    >>> stats["accepted"], stats["n"], round(stats["distance"]["max"], 4)
    (2, 3, 0.8)
    """
    return {
        "similarity": summarize(scores),
        "distance": summarize(1.0 - scores),
        "n": len(scores),
        "accepted": int((scores > threshold).sum()),
        "threshold": threshold,
    }


def speaker_pair_utterances(
    csv_path: Pathlike, spk_a: str, spk_b: str
) -> tuple[list[Utterance], list[Utterance]]:
    """The utterances of two speakers of a manifest (checked).

    Arguments
    ---------
    csv_path : Pathlike
        A prepared manifest (``test.csv``).
    spk_a, spk_b : str
        Speaker ids; the same id twice asks for SAP pairs.

    Returns
    -------
    (utts_a, utts_b)
        Each speaker's utterances (the same list twice when
        ``spk_a == spk_b``).

    Raises
    ------
    ConfigError
        When a speaker is not in the manifest, or a lone speaker has a
        single utterance (no same-speaker pair).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "test.csv").write_text(
    ...     "ID,duration,wav,start,stop,spk_id\\n" + "".join(
    ...         f"{u}_0,1.0,{{data_root}}/{u}.wav,0,8000,{u[0]}\\n"
    ...         for u in ("A1", "A2", "B1")))
    >>> for u in ("A1", "A2", "B1"):
    ...     _ = (d / f"{u}.wav").write_bytes(b"")
    >>> a, b = speaker_pair_utterances(d / "test.csv", "A", "B")
    >>> [u.utt_id for u in a], [u.utt_id for u in b]
    (['A1', 'A2'], ['B1'])
    >>> speaker_pair_utterances(d / "test.csv", "B", "B")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: speaker 'B' has only 1 utterance ...
    """
    spk2utts = speaker_utterances(utterances(read_manifest(csv_path)))
    for spk in (spk_a, spk_b):
        if spk not in spk2utts:
            known = sorted(spk2utts)
            raise ConfigError(
                f"unknown speaker {spk!r} in {csv_path}; valid ids "
                f"({len(known)}) include {', '.join(known[:5])}"
            )
    if spk_a == spk_b and len(spk2utts[spk_a]) < 2:
        raise ConfigError(
            f"speaker {spk_a!r} has only 1 utterance in {csv_path}; SAP "
            "needs at least 2 (pick another speaker)"
        )
    return spk2utts[spk_a], spk2utts[spk_b]


def speaker_pair_statistics(
    model: Embedder,
    utts_a: Sequence[Utterance],
    utts_b: Sequence[Utterance] | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """SAN (A x B) or SAP (distinct pairs of A) statistics of a model.

    Every utterance is embedded once; the pairs are scored with
    :func:`pair_scores` and summarized with :func:`pair_statistics` at the
    model's threshold.

    Arguments
    ---------
    model : Embedder
        The model.
    utts_a : sequence of Utterance
        Speaker A's utterances.
    utts_b : sequence of Utterance, optional
        Speaker B's utterances (SAN); without them, SAP over A's.
    batch_size : int
        Files embedded per batch.

    Returns
    -------
    dict
        :func:`pair_statistics` of the pair scores.

    Example
    -------
    >>> class Fake:
    ...     threshold = 0.5
    ...     def encode_files(self, paths, batch_size=32):
    ...         return torch.tensor([[1.0, float(p)] for p in paths])
    >>> a = [Utterance(u, "A", u) for u in ("0", "1")]
    >>> b = [Utterance("-1", "B", "-1")]
    >>> stats = speaker_pair_statistics(Fake(), a)  # cos(0, 45 deg)
    >>> round(stats["similarity"]["mean"], 4), stats["accepted"]
    (0.7071, 1)
    >>> speaker_pair_statistics(Fake(), a, b)["n"]
    2
    """
    utts = list(utts_a) + list(utts_b or [])
    embs = _embed(model, utts, batch_size)
    emb_a = embs[: len(utts_a)]
    if utts_b is None:
        scores = pair_scores(emb_a)
    else:
        scores = pair_scores(emb_a, embs[len(utts_a) :])
    return pair_statistics(scores, model.threshold)
