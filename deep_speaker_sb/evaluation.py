"""Evaluations of a model on prepared data: what ``verify.py`` reports.

:func:`evaluate_trials` is the whole trials evaluation (embeddings,
optional s-norm against a :func:`draw_cohort` cohort, metrics and the
``report.json`` content) and :func:`write_evaluation` writes its files;
:func:`speaker_pair_statistics` is the SAP / SAN mode (the cosine
similarities of all utterance pairs of one or two speakers).  The scoring
itself is :mod:`deep_speaker_sb.scoring`'s.

With a calibrated model (:mod:`deep_speaker_sb.calibration`), the report
also gives the actual ``cllr`` of its LLRs, the measured rates at each
stored operating point and a reliability diagram; ``min_cllr`` (the
calibration-free part) and the EER by test duration (:func:`
duration_buckets`) are given for any model.

Files that fail the speech check (:mod:`deep_speaker_sb.speech`: silence,
steady noise, tones) are not embedded (:func:`embed_speech`: each file is
read once, by the model's ``encode_speech_files``) and are left out of
every evaluation: the trials that name them are dropped and both are
counted in the report (``no_speech_files``, ``trials_left_out``, and the
list ``no_speech``).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.calibration import ScoreCalibration, cllr, min_cllr
from deep_speaker_sb.data.trials import Trial
from deep_speaker_sb.dataio import (
    Utterance,
    read_manifest,
    speaker_utterances,
    utterances,
)
from deep_speaker_sb.embedding import Embedder
from deep_speaker_sb.errors import ConfigError, DataError
from deep_speaker_sb.plots import (
    plot_det,
    plot_reliability,
    plot_score_histograms,
)
from deep_speaker_sb.scoring import (
    calibrate,
    compute_eer,
    pair_scores,
    read_trials,
    score_trials,
    snorm_scores,
    split_scores,
    summarize,
    threshold_rates,
    verification_metrics,
    write_scores,
)
from deep_speaker_sb.utils import Pathlike, write_json

if TYPE_CHECKING:  # inference imports this module (via register)
    from deep_speaker_sb.inference import Crops

logger = get_logger(__name__)


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


def embed_speech(
    model: Embedder,
    utts: Sequence[Utterance],
    batch_size: int = 32,
    crops: Crops | None = None,
) -> tuple[torch.Tensor, dict[str, str]]:
    """Embeds the utterances whose file passes the model's speech check;
    the others are left out (each file is read once, by the model's
    ``encode_speech_files``).

    Arguments
    ---------
    model : Embedder
        The model.
    utts : sequence of Utterance
        The utterances to embed.
    batch_size : int
        Files embedded per batch.
    crops : deep_speaker_sb.inference.Crops, optional
        Embed a file longer than ``crops.seconds`` as the mean of
        ``crops.n`` crops (passed on to ``encode_speech_files``).

    Returns
    -------
    (embeddings, refused)
        ``[n, emb_dim]`` embeddings of the utterances with speech, in the
        order of ``utts``; utterance id -> why its file holds no speech,
        in the order of ``utts`` (empty when all are speech).

    Example
    -------
    >>> from deep_speaker_sb.embedding import SpeechEmbeddings
    >>> class Fake:
    ...     def encode_speech_files(self, paths, batch_size=32):
    ...         silent = {i: f"{p} holds no speech"
    ...                   for i, p in enumerate(paths) if "silence" in p}
    ...         return SpeechEmbeddings(
    ...             torch.ones(len(paths) - len(silent), 2), silent)
    >>> utts = [Utterance("a", "A", "a.wav"),
    ...         Utterance("z", "A", "silence.wav")]
    >>> embs, refused = embed_speech(Fake(), utts)
    >>> embs.shape, refused
    (torch.Size([1, 2]), {'z': 'silence.wav holds no speech'})
    """
    extra = {} if crops is None else {"crops": crops}
    result = model.encode_speech_files(
        [u.wav for u in utts], batch_size=batch_size, **extra
    )
    refused = {utts[i].utt_id: why for i, why in result.no_speech.items()}
    if refused:
        logger.info(
            "%d of %d files hold no speech and are left out: %s",
            len(refused),
            len(utts),
            ", ".join(sorted(refused)),
        )
    return result.embeddings, refused


def no_speech_entries(
    refused: Mapping[str, str], utts: Mapping[str, Utterance]
) -> list[dict[str, str]]:
    """The ``no_speech`` list of a report: utterance, file and reason.

    Example
    -------
    >>> no_speech_entries({"z": "no speech"},
    ...                   {"z": Utterance("z", "A", "z.wav")})
    [{'utt_id': 'z', 'wav': 'z.wav', 'reason': 'no speech'}]
    """
    return [
        {"utt_id": u, "wav": str(utts[u].wav), "reason": why}
        for u, why in sorted(refused.items())
    ]


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
    llrs : torch.Tensor, optional
        The calibrated LLRs of the cosine scores (a calibrated model).
    """

    trials: list[Trial]
    scores: torch.Tensor
    report: dict[str, Any]
    llrs: torch.Tensor | None = None

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
    durations: Mapping[str, float] | None = None,
    crops: Crops | None = None,
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
    durations : mapping, optional
        Utterance id -> seconds (:func:`manifest_durations`): adds
        ``eer_by_duration`` (:func:`duration_buckets` of the test side).
    crops : deep_speaker_sb.inference.Crops, optional
        Embed every trial (and cohort) file longer than ``crops.seconds``
        as the mean of ``crops.n`` crops (see :func:`embed_speech`).

    Returns
    -------
    TrialsEvaluation
        The trials, their scores and the report: ``info``, ``n_trials``,
        ``n_utterances``, ``embedding_seconds``, ``threshold``, ``crops``
        (None, or the crops' ``n`` and ``seconds``), the
        metrics of :func:`verification_metrics` on the scores,
        ``at_threshold`` (:func:`threshold_rates` of the cosine scores at
        the model's threshold), ``score`` (``"cosine similarity"`` or
        ``"s-norm"``) and, with a cohort, ``raw`` (the cosine metrics) and
        ``snorm`` (``cohort_size``, ``top_n``, ``seed``,
        ``no_speech_files``).  Files that fail the speech check
        (:func:`embed_speech`) are not embedded and the trials that name
        them are not scored: ``no_speech_files`` counts them,
        ``trials_left_out`` counts those trials and ``no_speech`` lists
        them (:func:`no_speech_entries`); ``n_trials`` counts the scored
        trials.  Calibration: ``min_cllr`` of the scores beside the EER;
        ``calibration`` (the model's ``score_calibration`` as the export
        stores it, or None) and ``cllr`` (of its LLRs of the cosine
        scores, None without calibration; with s-norm, ``cllr`` and the
        cosine ``min_cllr`` are in ``raw``); ``operating_point`` (the
        name of the threshold that decided) and ``operating_points``
        (each stored point's threshold, the FAR / FRR measured on these
        trials and those where it was fitted).

    Raises
    ------
    DataError
        When the speech check leaves no target or no non-target trial.

    Example
    -------
    >>> from deep_speaker_sb.embedding import SpeechEmbeddings
    >>> class Fake:  # embeds "<spk>_<n>.wav" as a vector of its speaker
    ...     threshold = 0.5
    ...     def encode_speech_files(self, paths, batch_size=32):
    ...         silent = {i: f"{p} holds no speech"
    ...                   for i, p in enumerate(paths) if "silent" in p}
    ...         return SpeechEmbeddings(torch.stack(
    ...             [torch.eye(2)[int(p[0])] for i, p in enumerate(paths)
    ...              if i not in silent]), silent)
    >>> utts = {u: Utterance(u, u[0], f"{u}.wav")
    ...         for u in ("0_a", "0_b", "1_a", "1_silent")}
    >>> trials = [(1, "0_a", "0_b"), (0, "0_a", "1_a"),
    ...           (0, "0_b", "1_silent")]
    >>> result = evaluate_trials(Fake(), trials, utts)
    >>> result.scores
    tensor([1., 0.])
    >>> result.report["eer"], result.report["at_threshold"]
    (0.0, {'false_reject_rate': 0.0, 'false_accept_rate': 0.0})
    >>> result.report["no_speech_files"], result.report["trials_left_out"]
    (1, 1)
    """
    utt_ids = sorted({u for _, e, t in trials for u in (e, t)})
    start = time.perf_counter()
    embs, refused = embed_speech(
        model, [utts[u] for u in utt_ids], batch_size, crops
    )
    seconds = time.perf_counter() - start
    scored = [t for t in trials if t[1] not in refused and t[2] not in refused]
    if refused:
        kinds = {label for label, _, _ in scored}
        if kinds != {0, 1}:
            raise DataError(
                f"{len(refused)} trial file(s) hold no speech (e.g. "
                f"{next(iter(refused.values()))}); leaving them out leaves "
                "no target or no non-target trial to score"
            )
    n_left_out = len(trials) - len(scored)
    trials = scored
    needed = [u for u in utt_ids if u not in refused]
    embeddings = dict(zip(needed, embs, strict=True))
    raw = score_trials(trials, embeddings)
    labels = [label for label, _, _ in trials]
    report: dict[str, Any] = {
        **(info or {}),
        "n_trials": len(trials),
        "n_utterances": len(needed),
        "no_speech_files": len(refused),
        "trials_left_out": n_left_out,
        "no_speech": no_speech_entries(refused, utts),
        "embedding_seconds": round(seconds, 3),
        "threshold": model.threshold,
        "crops": None if crops is None else dataclasses.asdict(crops),
    }
    raw_metrics = verification_metrics(labels, raw)
    report["at_threshold"] = threshold_rates(labels, raw, model.threshold)
    sc = getattr(model, "score_calibration", None) or ScoreCalibration()
    llrs = _calibration_report(report, raw_metrics, labels, raw, sc, model)
    scores, metrics = raw, raw_metrics
    if cohort is not None:
        cohort_embs, cohort_refused = embed_speech(
            model, cohort.utterances, batch_size, crops
        )
        if len(cohort_embs) < 2:
            raise DataError(
                f"s-norm needs 2+ cohort utterances with speech in "
                f"{cohort.csv} ({len(cohort_refused)} hold no speech)"
            )
        scores = snorm_scores(trials, embeddings, cohort_embs, top_n)
        metrics = verification_metrics(labels, scores)
        pos, neg = split_scores(labels, scores)
        metrics["min_cllr"] = min_cllr(pos.double(), neg.double())
        report["raw"] = raw_metrics
        report["snorm"] = {
            "cohort_size": len(cohort_embs),
            "top_n": top_n,
            "seed": cohort.seed,
            "no_speech_files": len(cohort_refused),
        }
    report.update(metrics)
    report["score"] = "cosine similarity" if cohort is None else "s-norm"
    if durations is not None:
        report["eer_by_duration"] = duration_buckets(trials, scores, durations)
    return TrialsEvaluation(list(trials), scores, report, llrs)


def fit_calibration(
    model: Embedder,
    trials_path: Pathlike,
    csv_path: Pathlike,
    fitted_on: str,
    batch_size: int = 32,
) -> tuple[TrialsEvaluation, ScoreCalibration]:
    """Scores a labelled trials file and fits the score calibration and
    operating points on it (``verify.py --calibrate``, and the export's
    calibration on the held-out speakers of ``cal_trials.txt``).

    Arguments
    ---------
    model : Embedder
        The model (cosine scores; trials whose files have no speech are
        left out, as :func:`evaluate_trials` does).
    trials_path, csv_path : Pathlike
        The trials and the manifest of their utterances
        (:func:`load_trials`).
    fitted_on : str
        What trials, recorded with the calibration.
    batch_size : int
        Files embedded per batch.

    Returns
    -------
    (TrialsEvaluation, ScoreCalibration)
        The evaluation (with the model's own calibration, if any) and the
        calibration fitted on it.

    Raises
    ------
    DataError
        When the files are malformed, or the scores cannot be calibrated
        (a kind of trial missing, no better than chance).
    """
    trials, utts = load_trials(trials_path, csv_path)
    result = evaluate_trials(model, trials, utts, batch_size=batch_size)
    labels = [label for label, _, _ in result.trials]
    return result, calibrate(labels, result.scores, fitted_on=fitted_on)


def _calibration_report(
    report: dict[str, Any],
    metrics: dict[str, Any],
    labels: Sequence[int],
    raw: torch.Tensor,
    sc: ScoreCalibration,
    model: Embedder,
) -> torch.Tensor | None:
    """Adds the calibration entries of :func:`evaluate_trials` (``cllr``
    and ``min_cllr`` into ``metrics``, the others into ``report``);
    returns the LLRs (None without calibration)."""
    pos, neg = split_scores(labels, raw)
    metrics["min_cllr"] = min_cllr(pos.double(), neg.double())
    point = getattr(model, "operating_point", None)
    if point is not None:
        report["operating_point"] = point.name
    if sc.points:
        report["operating_points"] = {
            name: {
                "threshold": p.threshold,
                "target_far": p.target_far,
                "fitted": {"far": p.far, "frr": p.frr, "trials": p.trials},
                **threshold_rates(labels, raw, p.threshold),
            }
            for name, p in sc.points.items()
        }
    if sc.calibration is None:
        report["calibration"] = metrics["cllr"] = None
        return None
    report["calibration"] = sc.calibration.to_config()
    llrs = torch.from_numpy(sc.calibration.llr(raw.double().numpy()))
    tar, non = split_scores(labels, llrs)
    metrics["cllr"] = cllr(tar, non)
    return llrs


#: The test-duration buckets of :func:`duration_buckets`: name, lowest and
#: highest duration in seconds (a bucket holds ``low <= d < high``).
DURATION_BUCKETS = (("<2s", 0.0, 2.0), ("2-4s", 2.0, 4.0), (">4s", 4.0, 1e9))


def duration_buckets(
    trials: Sequence[Trial],
    scores: torch.Tensor,
    durations: Mapping[str, float],
) -> dict[str, dict[str, Any]]:
    """EER of the trials by the duration of their test utterance.

    Arguments
    ---------
    trials : sequence of (label, enrol_utt, test_utt)
        The scored trials.
    scores : torch.Tensor
        Their scores.
    durations : mapping
        Utterance id -> seconds (a test utterance without one is left out
        of every bucket).

    Returns
    -------
    dict
        Bucket name (``"<2s"``, ``"2-4s"``, ``">4s"``) -> ``n_trials``,
        ``n_target``, ``n_nontarget`` and ``eer`` (None unless the bucket
        holds both kinds of trial).

    Example
    -------
    >>> trials = [(1, "a", "b"), (0, "a", "c"), (1, "a", "d")]
    >>> out = duration_buckets(trials, torch.tensor([0.9, 0.1, 0.5]),
    ...                        {"b": 1.5, "c": 1.0, "d": 5.0})
    >>> out["<2s"]["eer"], out["<2s"]["n_trials"], out[">4s"]["eer"]
    (0.0, 2, None)
    """
    out = {}
    for name, low, high in DURATION_BUCKETS:
        idx = [
            i
            for i, (_, _, test) in enumerate(trials)
            if test in durations and low <= durations[test] < high
        ]
        labels = torch.tensor([trials[i][0] for i in idx], dtype=torch.bool)
        part = scores[torch.tensor(idx, dtype=torch.long)]
        n_tar = int(labels.sum())
        entry: dict[str, Any] = {
            "n_trials": len(idx),
            "n_target": n_tar,
            "n_nontarget": len(idx) - n_tar,
            "eer": None,
        }
        if 0 < n_tar < len(idx):
            entry["eer"] = compute_eer(part[labels], part[~labels])[0]
        out[name] = entry
    return out


def manifest_durations(csv_path: Pathlike) -> dict[str, float]:
    """Utterance id -> duration in seconds: the sum of its segments'
    ``duration`` in a prepared manifest (a tail shorter than the
    preparation's ``min_dur`` is not counted).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.wav").write_bytes(b"")
    >>> _ = (d / "test.csv").write_text(
    ...     "ID,duration,wav,start,stop,spk_id\\n"
    ...     "a_0,3.0,{data_root}/a.wav,0,24000,A\\n"
    ...     "a_1,1.5,{data_root}/a.wav,24000,36000,A\\n")
    >>> manifest_durations(d / "test.csv")
    {'a': 4.5}
    """
    out: dict[str, float] = {}
    for row in read_manifest(csv_path):
        out[row.utt_id] = out.get(row.utt_id, 0.0) + float(row.duration)
    return out


#: The files :func:`write_evaluation` writes, in the order it lists them.
EVALUATION_FILES = ("scores.txt", "report.json", "score_hist.png", "det.png")
#: The reliability diagram, written after them for a calibrated model.
RELIABILITY_FILE = "reliability.png"


def write_evaluation(out: Pathlike, result: TrialsEvaluation) -> list[Path]:
    """Writes ``scores.txt``, ``report.json`` and the score plots (and,
    when the result has LLRs, the reliability diagram ``reliability.png``).

    Arguments
    ---------
    out : Pathlike
        The output folder (created when missing).
    result : TrialsEvaluation
        What :func:`evaluate_trials` returned.

    Returns
    -------
    list of Path
        The files, in the order of :data:`EVALUATION_FILES` (then
        :data:`RELIABILITY_FILE` when written).

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
    if result.llrs is not None:
        paths.append(
            plot_reliability(
                labels,
                result.llrs,
                out / RELIABILITY_FILE,
                title=f"Reliability ({_cllr_text(result.report)})",
            )
        )
    write_json(report_json, result.report)
    return paths


def _cllr_text(report: Mapping[str, Any]) -> str:
    """The Cllr / min-Cllr of the cosine scores' LLRs, for a title."""
    where = report.get("raw", report)
    if where.get("cllr") is None:
        return "cosine LLRs"
    return f"Cllr {where['cllr']:.3f}, min-Cllr {where['min_cllr']:.3f}"


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

    Every utterance with speech is embedded once (files that fail the
    speech check, :func:`embed_speech`, are left out with their pairs);
    the pairs are scored with :func:`pair_scores` and summarized with
    :func:`pair_statistics` at the model's threshold.

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
        :func:`pair_statistics` of the pair scores, with
        ``no_speech_files`` (how many files were left out), ``n_a`` and
        ``n_b`` (the utterances left of each speaker; ``n_b`` is ``n_a``
        for SAP) and ``no_speech`` (:func:`no_speech_entries`).

    Raises
    ------
    DataError
        When the speech check leaves no pair to score.

    Example
    -------
    >>> from deep_speaker_sb.embedding import SpeechEmbeddings
    >>> class Fake:
    ...     threshold = 0.5
    ...     def encode_speech_files(self, paths, batch_size=32):
    ...         silent = {i: f"{p} holds no speech"
    ...                   for i, p in enumerate(paths) if p == "nan"}
    ...         return SpeechEmbeddings(torch.tensor(
    ...             [[1.0, float(p)] for p in paths if p != "nan"]), silent)
    >>> a = [Utterance(u, "A", u) for u in ("0", "1", "nan")]
    >>> b = [Utterance("-1", "B", "-1")]
    >>> stats = speaker_pair_statistics(Fake(), a)  # cos(0, 45 deg)
    >>> round(stats["similarity"]["mean"], 4), stats["accepted"]
    (0.7071, 1)
    >>> stats["no_speech_files"], stats["n_a"]
    (1, 2)
    >>> speaker_pair_statistics(Fake(), a, b)["n"]
    2
    """
    every = list(utts_a) + list(utts_b or [])
    embs, refused = embed_speech(model, every, batch_size)
    utts_a = [u for u in utts_a if u.utt_id not in refused]
    if utts_b is not None:
        utts_b = [u for u in utts_b if u.utt_id not in refused]
    too_few = len(utts_a) < (2 if utts_b is None else 1) or utts_b == []
    if refused and too_few:
        raise DataError(
            f"{len(refused)} file(s) of the speakers hold no speech (e.g. "
            f"{next(iter(refused.values()))}); no pair with speech is left"
        )
    emb_a = embs[: len(utts_a)]
    if utts_b is None:
        scores = pair_scores(emb_a)
    else:
        scores = pair_scores(emb_a, embs[len(utts_a) :])
    return {
        **pair_statistics(scores, model.threshold),
        "n_a": len(utts_a),
        "n_b": len(utts_a if utts_b is None else utts_b),
        "no_speech_files": len(refused),
        "no_speech": no_speech_entries(refused, {u.utt_id: u for u in every}),
    }
