"""Steps 3 to 5 of the preparation: split, manifests, trials, summary.

A few ``train`` speakers are held out as the calibration split
(:func:`hold_out_speakers`); the other kept ``train`` utterances are split
per speaker into train and valid (:func:`split_train_valid`) and cut
into manifest rows (one
:class:`~deep_speaker_sb.dataio.SegmentRow` per segment,
:func:`segment_rows`); the official trials whose files were kept
(:func:`kept_trials`) or the balanced ones are written to ``trials.txt``
(:func:`write_trials`), every input left out to ``skipped.csv``
(:func:`write_skipped`), and the counts and hours to
``prep_summary.json`` (:func:`summarise`).

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.cache import wav_relpath
from deep_speaker_sb.data.convert import ConvertedUtterance
from deep_speaker_sb.data.inputs import Skipped
from deep_speaker_sb.data.trials import Trial
from deep_speaker_sb.dataio import DATA_ROOT, SegmentRow
from deep_speaker_sb.dsp import segment_bounds
from deep_speaker_sb.utils import atomic_write

logger = get_logger(__name__)

#: Columns of ``skipped.csv``.
SKIPPED_FIELDS = ("path", "utt_id", "reason")

_U = TypeVar("_U")

#: The fewest speakers a calibration split holds (fewer give too few
#: speaker pairs for its non-target trials): none are held out then.
MIN_CAL_SPEAKERS = 3
#: At most this share of the training speakers is held out.
MAX_CAL_SHARE = 0.2


def n_held_out(n_speakers: int, wanted: int) -> int:
    """How many of ``n_speakers`` training speakers the calibration split
    takes when ``wanted`` are asked for: at most :data:`MAX_CAL_SHARE` of
    them, and 0 when that is fewer than :data:`MIN_CAL_SPEAKERS`.

    Example
    -------
    >>> n_held_out(46, 6), n_held_out(20, 6), n_held_out(10, 6)
    (6, 4, 0)
    >>> n_held_out(60, 0)
    0
    """
    n = min(wanted, int(n_speakers * MAX_CAL_SHARE))
    return n if n >= MIN_CAL_SPEAKERS else 0


def hold_out_speakers(
    utts: Iterable[_U], n_wanted: int, seed: int, gender: dict[str, str]
) -> tuple[list[_U], list[_U]]:
    """Moves the utterances of a few seeded speakers out of training.

    The held-out speakers (:func:`n_held_out` of them) are drawn in turn
    from each gender (``gender``: speaker -> ``m``/``f``/``""``), so that
    a corpus with both keeps both in the calibration split.

    Arguments
    ---------
    utts : iterable
        Utterances: anything with ``utt_id`` and ``spk_id`` attributes.
    n_wanted : int
        Speakers asked for (``PrepOptions.cal_speakers``).
    seed : int
        The draw depends only on it and the speaker ids.
    gender : dict
        Speaker id -> gender (missing speakers: unknown).

    Returns
    -------
    (list, list)
        The utterances of the speakers kept for training, and those of
        the held-out speakers, each in the order given.

    Example
    -------
    >>> from deep_speaker_sb.data.inputs import SourceUtterance
    >>> utts = [SourceUtterance("train", f"S{s}_{k}", f"S{s}", "")
    ...         for s in range(20) for k in range(2)]
    >>> gender = {f"S{s}": "mf"[s % 2] for s in range(20)}
    >>> kept, held = hold_out_speakers(utts, 4, seed=1, gender=gender)
    >>> len(kept), len(held)
    (32, 8)
    >>> sorted(gender[s] for s in {u.spk_id for u in held})
    ['f', 'f', 'm', 'm']
    >>> hold_out_speakers(utts, 4, 1, gender) == (kept, held)
    True
    """
    utts = list(utts)
    speakers = sorted({u.spk_id for u in utts})
    n = n_held_out(len(speakers), n_wanted)
    by_gender: dict[str, list[str]] = defaultdict(list)
    for spk in speakers:
        by_gender[gender.get(spk, "")].append(spk)
    queues = []
    for g in sorted(by_gender):
        queue = by_gender[g][:]
        random.Random(f"{seed}:cal:{g}").shuffle(queue)
        queues.append(queue)
    held: set[str] = set()
    while len(held) < n:
        for queue in queues:
            if queue and len(held) < n:
                held.add(queue.pop())
    kept = [u for u in utts if u.spk_id not in held]
    return kept, [u for u in utts if u.spk_id in held]


def split_train_valid(
    utts: Iterable[_U], valid_ratio: float, seed: int
) -> tuple[list[_U], list[_U]]:
    """Per speaker, a seeded ``valid_ratio`` share of utterances to valid.

    A speaker with two utterances or more keeps at least one in each part
    (when ``valid_ratio > 0``).  Both parts are sorted by speaker, then
    utterance.

    Arguments
    ---------
    utts : iterable
        Utterances: anything with ``utt_id`` and ``spk_id`` attributes.
    valid_ratio : float
        Share of each speaker's utterances that goes to valid.
    seed : int
        The split depends only on it, the speaker and its utterance ids.

    Returns
    -------
    (list, list)
        The train part and the valid part.

    Example
    -------
    >>> from deep_speaker_sb.data.inputs import SourceUtterance
    >>> utts = [SourceUtterance("train", f"{s}_{k}", s, "")
    ...         for s in ("A", "B") for k in range(5)]
    >>> train, valid = split_train_valid(utts, 0.2, seed=1)
    >>> len(train), sorted(u.spk_id for u in valid)
    (8, ['A', 'B'])
    >>> split_train_valid(utts, 0.2, seed=1) == (train, valid)
    True
    """
    by_spk: dict[str, list[_U]] = defaultdict(list)
    for u in utts:
        by_spk[u.spk_id].append(u)
    train, valid = [], []
    for spk in sorted(by_spk):
        own = sorted(by_spk[spk], key=lambda u: u.utt_id)
        n = len(own)
        n_valid = 0
        if valid_ratio > 0 and n >= 2:
            n_valid = min(max(1, round(n * valid_ratio)), n - 1)
        shuffled = own[:]
        random.Random(f"{seed}:{spk}").shuffle(shuffled)
        chosen = {u.utt_id for u in shuffled[:n_valid]}
        for u in own:
            (valid if u.utt_id in chosen else train).append(u)
    return train, valid


def segment_rows(
    utts: Iterable[ConvertedUtterance],
    sample_rate: int,
    seg_dur: float,
    min_dur: float,
) -> list[SegmentRow]:
    """The manifest rows of cached utterances: one per segment.

    Segment ``k`` of utterance ``U`` is ``U_k``; its ``wav`` is the cached
    WAV under ``{data_root}`` (:func:`deep_speaker_sb.dsp.segment_bounds`
    cuts the segments).

    Example
    -------
    >>> from deep_speaker_sb.data.inputs import SourceUtterance
    >>> src = SourceUtterance("train", "A_1", "A", "a.flac", None, "xin")
    >>> u = ConvertedUtterance(src, 60000, 9.0, 1, 16000)
    >>> rows = segment_rows([u], 8000, 3.0, 1.0)
    >>> [(r.ID, r.start, r.stop, r.gender) for r in rows]
    [('A_1_0', 0, 24000, 'unknown'), ('A_1_1', 24000, 48000, 'unknown'),
     ('A_1_2', 48000, 60000, 'unknown')]
    >>> rows[0].wav
    '{data_root}/wavs/train/A/A_1.wav'
    """
    rows = []
    for u in utts:
        src = u.source
        wav = f"{DATA_ROOT}/{wav_relpath(src)}"
        bounds = segment_bounds(u.n_out, sample_rate, seg_dur, min_dur)
        for k, (start, stop) in enumerate(bounds):
            rows.append(
                SegmentRow(
                    ID=f"{src.utt_id}_{k}",
                    duration=round((stop - start) / sample_rate, 6),
                    wav=wav,
                    start=start,
                    stop=stop,
                    spk_id=src.spk_id,
                    gender="unknown" if src.gender is None else src.gender,
                    words=src.words or "",
                )
            )
    return rows


def write_skipped(path: Path, skipped: Iterable[Skipped]) -> None:
    """Writes ``skipped.csv`` atomically (:data:`SKIPPED_FIELDS`).

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "skipped.csv"
    >>> write_skipped(path, [Skipped("a.wav", "A_1", "empty: no audio")])
    >>> path.read_text().splitlines()
    ['path,utt_id,reason', 'a.wav,A_1,empty: no audio']
    """
    with atomic_write(path) as f:
        writer = csv.writer(f)
        writer.writerow(SKIPPED_FIELDS)
        writer.writerows((s.path, s.utt_id, s.reason) for s in skipped)


def kept_trials(
    official: Sequence[Trial], kept: Iterable[ConvertedUtterance]
) -> list[Trial]:
    """The official trials whose two utterances were kept (in order).

    Example
    -------
    >>> from deep_speaker_sb.data.inputs import SourceUtterance
    >>> src = SourceUtterance("test", "A_1", "A", "a.flac")
    >>> kept_trials([(1, "A_1", "A_1"), (0, "A_1", "B_1")],
    ...              [ConvertedUtterance(src, 8000, 1.0, 1, 16000)])
    [(1, 'A_1', 'A_1')]
    """
    have = {u.utt_id for u in kept}
    trials = [t for t in official if t[1] in have and t[2] in have]
    if len(trials) < len(official):
        logger.warning(
            "%d of %d official trials dropped: a file they name was "
            "skipped (see skipped.csv)",
            len(official) - len(trials),
            len(official),
        )
    return trials


def write_trials(path: Path, trials: Iterable[Trial]) -> None:
    """Writes ``trials.txt`` atomically: ``<label> <enrol> <test>`` lines.

    Example
    -------
    >>> import pathlib, tempfile
    >>> trials = [(1, "A_1", "A_2"), (0, "A_1", "B_1")]
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_trials(folder / "trials.txt", trials)
    >>> print((folder / "trials.txt").read_text(), end="")
    1 A_1 A_2
    0 A_1 B_1
    """
    with atomic_write(path) as f:
        f.writelines(f"{lab} {a} {b}\n" for lab, a, b in trials)


def hours(seconds: float) -> float:
    """Seconds as hours, rounded as the summary gives them.

    Example
    -------
    >>> hours(5400), hours(1)
    (1.5, 0.0003)
    """
    return round(seconds / 3600.0, 4)


def summarise(
    parts: dict[str, list[ConvertedUtterance]],
    rows: dict[str, list[SegmentRow]],
    kept: list[ConvertedUtterance],
    skipped: list[Skipped],
    trials: list[Trial],
    native_rate: int,
    sample_rate: int,
) -> dict[str, Any]:
    """Counts and hours of the preparation (``prep_summary.json``), less
    the folders, files and timings that
    :func:`~deep_speaker_sb.data.prep.prepare_corpus` adds."""
    every = [u for p in parts.values() for u in p]
    no_gender, no_words = _missing(kept)
    return {
        "sample_rate": int(sample_rate),
        "speakers": {k: len({u.spk_id for u in p}) for k, p in parts.items()},
        "utterances": {k: len(p) for k, p in parts.items()},
        "segments": {k: len(r) for k, r in rows.items()},
        "hours_before_trim": {
            **{
                k: hours(sum(u.raw_seconds for u in p))
                for k, p in parts.items()
            },
            "total": hours(sum(u.raw_seconds for u in every)),
        },
        "hours_after_trim": {
            **{
                k: hours(sum(u.n_out for u in p) / sample_rate)
                for k, p in parts.items()
            },
            "total": hours(sum(u.n_out for u in every) / sample_rate),
        },
        "hours_in_segments": {
            k: hours(sum(r.duration for r in part_rows))
            for k, part_rows in rows.items()
        },
        "skipped": len(skipped),
        "skipped_by_reason": dict(
            sorted(Counter(s.reason.split(":")[0] for s in skipped).items())
        ),
        "converted": {
            "downmixed": sum(1 for u in kept if u.channels > 1),
            "other_sample_rate": sum(
                1 for u in kept if u.in_rate != native_rate
            ),
        },
        "wavs_without_prompt": no_words,
        "speakers_without_gender": no_gender,
        "trials": {
            "target": sum(1 for t in trials if t[0] == 1),
            "nontarget": sum(1 for t in trials if t[0] == 0),
        },
    }


def _missing(kept: list[ConvertedUtterance]) -> tuple[list[str], int]:
    """Speakers without a gender, and the number of utterances without
    words, among the kept utterances."""
    no_gender = {u.spk_id for u in kept if u.source.gender is None}
    return sorted(no_gender), sum(1 for u in kept if u.source.words is None)


def log_incomplete(
    kept: list[ConvertedUtterance], skipped: list[Skipped], skipped_csv: Path
) -> None:
    """Logs what the preparation kept incomplete or left out."""
    no_gender, no_words = _missing(kept)
    if no_gender:
        logger.warning(
            "%d speakers without a gender, kept with gender 'unknown': %s",
            len(no_gender),
            " ".join(no_gender),
        )
    if no_words:
        logger.warning("%d WAVs without a prompt, kept with no words", no_words)
    if skipped:
        logger.warning("%d inputs skipped, see %s", len(skipped), skipped_csv)
