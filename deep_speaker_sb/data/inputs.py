"""What the preparation core takes: a corpus's listing and the options.

A corpus module lists its utterances as a :class:`Listing` (one
:class:`SourceUtterance` per input file, plus the inputs it already had
to leave out, as :class:`Skipped`); :class:`PrepOptions` holds the audio,
segment, split and trial options of
:func:`deep_speaker_sb.data.prep.prepare_corpus`, and their defaults (the
VIVOS recipe's: every other default of the preparation reads them here).

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deep_speaker_sb.data.trials import Trial
from deep_speaker_sb.errors import ConfigError

#: Default number of trials in ``trials.txt`` (half target, half not).
DEFAULT_NUM_TRIALS = 10000
#: Bumped when the outputs change for the same options.
PREP_VERSION = 1
#: The splits of a listing: ``train`` speakers (split again into train
#: and valid) and unseen ``test`` speakers (the trials).
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SourceUtterance:
    """One input utterance of a corpus, as its listing step found it.

    Arguments
    ---------
    split : str
        ``"train"`` (a training speaker's) or ``"test"`` (an unseen
        speaker's, for the trials).
    utt_id : str
        Unique over the corpus; names the cached WAV and the segments.
    spk_id : str
        The speaker.
    src : str
        The source audio file (any format libsndfile reads).
    gender : str, optional
        ``None`` when the corpus should give it but does not: kept as
        ``"unknown"`` and counted in the summary.
    words : str, optional
        The transcript; ``None`` when the corpus should give it but does
        not: kept empty and counted in the summary.  A corpus without
        transcripts gives ``""``.
    """

    split: str
    utt_id: str
    spk_id: str
    src: str
    gender: str | None = None
    words: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An input left out, and why (a row of ``skipped.csv``).

    The part of ``reason`` before its first ``:`` is what the summary
    counts (``"unreadable: <details>"``).
    """

    path: str
    utt_id: str
    reason: str


@dataclass(frozen=True)
class Listing:
    """The utterances of a corpus (step 1, the corpus-specific step).

    Arguments
    ---------
    utterances : sequence of SourceUtterance
        The inputs to prepare, in a fixed order (sorted paths).
    native_rate : int
        The corpus's usual sample rate: kept inputs at another rate are
        counted as ``converted.other_sample_rate`` in the summary.
    skipped : sequence of Skipped
        The inputs the listing already left out (bad names, ...).
    trials : sequence of (label, enrol_utt, test_utt), optional
        The corpus's official trials over ``test`` utterance ids, written
        to ``trials.txt`` as they are (``num_trials`` is then unused; a
        trial whose file was skipped is dropped, with a warning); ``None``:
        balanced trials are drawn
        (:func:`~deep_speaker_sb.data.trials.make_trials`).

    Example
    -------
    >>> u = SourceUtterance("train", "S1_U1", "S1", "/c/S1/U1.flac", "f", "")
    >>> Listing([u], native_rate=16000).utterances[0].spk_id
    'S1'
    >>> Listing([u, u], native_rate=16000)
    Traceback (most recent call last):
    ...
    ValueError: utterance id S1_U1 is listed twice; ...
    """

    utterances: Sequence[SourceUtterance]
    native_rate: int
    skipped: Sequence[Skipped] = ()
    trials: Sequence[Trial] | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        test: set[str] = set()
        for u in self.utterances:
            if u.split == "test":
                test.add(u.utt_id)
            if u.split not in SPLITS:
                raise ValueError(
                    f"utterance {u.utt_id}: split {u.split!r} is not one "
                    f"of {SPLITS}; a listing must say train or test"
                )
            if u.utt_id in seen:
                raise ValueError(
                    f"utterance id {u.utt_id} is listed twice; a listing "
                    "must skip duplicates (they share one cached WAV)"
                )
            seen.add(u.utt_id)
        for _, enrol, probe in self.trials or ():
            for utt in (enrol, probe):
                if utt not in test:
                    raise ValueError(
                        f"official trial names {utt}, which is not a test "
                        "utterance of the listing"
                    )


@dataclass(frozen=True)
class PrepOptions:
    """The options of :func:`~deep_speaker_sb.data.prep.prepare_corpus`
    (checked when made).

    Arguments
    ---------
    sample_rate : int
        Sample rate of the cached WAVs.
    seg_dur : float
        Longest segment of a manifest row, in seconds.
    min_dur : float
        Shortest segment kept (a shorter tail is dropped), and shortest
        utterance kept after trimming, in seconds.
    valid_ratio : float
        Share of each train speaker's utterances that goes to
        ``valid.csv``.
    num_trials : int
        Trials in ``trials.txt`` (half target); fewer when fewer distinct
        pairs exist.
    seed : int
        Seed of the train/valid split, the held-out speakers and the
        trials.
    cal_speakers : int
        Training speakers held out of training as the calibration split
        (``cal.csv``, ``cal_trials.txt``): the export's score calibration
        is fitted on them, speakers the model never heard, so that its
        LLRs and thresholds hold on new speakers.  At most a fifth of the
        training speakers are held out, and none when that is fewer than
        :data:`MIN_CAL_SPEAKERS` (the export then calibrates on the
        validation trials of training speakers, which is overconfident).
        ``0`` holds none out.
    num_workers : int
        Processes converting the audio (does not change the outputs).
    trim_db : float
        Silence threshold below the utterance's loudness, in dB; ``0``
        disables trimming.
    trim_margin : float
        Seconds kept before and after the speech when trimming.

    Example
    -------
    >>> PrepOptions(seg_dur=2.0).min_dur
    1.0
    >>> PrepOptions(seg_dur=1.0, min_dur=2.0, num_workers=0)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: min_dur must be ...; num_workers ...
    """

    sample_rate: int = 8000
    seg_dur: float = 3.0
    min_dur: float = 1.0
    valid_ratio: float = 0.1
    num_trials: int = DEFAULT_NUM_TRIALS
    seed: int = 1234
    cal_speakers: int = 6
    num_workers: int = 1
    trim_db: float = 40.0
    trim_margin: float = 0.1

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be finite (got {value})"
            for name, value in (
                ("seg_dur", self.seg_dur),
                ("min_dur", self.min_dur),
                ("valid_ratio", self.valid_ratio),
                ("trim_db", self.trim_db),
                ("trim_margin", self.trim_margin),
            )
            if not math.isfinite(value)
        ]
        if not self.sample_rate > 0:
            problems.append(f"sample_rate must be > 0 (got {self.sample_rate})")
        if not self.seg_dur > 0:
            problems.append(f"seg_dur must be > 0 (got {self.seg_dur})")
        if not 0 < self.min_dur <= self.seg_dur:
            problems.append(
                "min_dur must be > 0 and <= seg_dur "
                f"(got {self.min_dur}, {self.seg_dur})"
            )
        if not 0 <= self.valid_ratio < 1:
            problems.append(
                f"valid_ratio must be in [0, 1) (got {self.valid_ratio})"
            )
        if self.num_trials < 0:
            problems.append(f"num_trials must be >= 0 (got {self.num_trials})")
        if self.cal_speakers < 0:
            problems.append(
                f"cal_speakers must be >= 0 (got {self.cal_speakers})"
            )
        if self.num_workers < 1:
            problems.append(
                f"num_workers must be >= 1 (got {self.num_workers})"
            )
        if self.trim_db < 0:
            problems.append(f"trim_db must be >= 0 (got {self.trim_db})")
        if self.trim_margin < 0:
            problems.append(
                f"trim_margin must be >= 0 (got {self.trim_margin})"
            )
        if problems:
            raise ConfigError("; ".join(problems))

    def audio_options(self, data_folder: Path) -> dict[str, Any]:
        """What the cached WAVs depend on (``wavs/.audio_options.json``)."""
        return {
            "data_folder": str(data_folder),
            "sample_rate": int(self.sample_rate),
            "trim_db": float(self.trim_db),
            "trim_margin": float(self.trim_margin),
            "prep_version": PREP_VERSION,
        }

    def saved_options(self, data_folder: Path) -> dict[str, Any]:
        """What all outputs depend on (``options.json``, the skip rule)."""
        return {
            **self.audio_options(data_folder),
            "seg_dur": float(self.seg_dur),
            "min_dur": float(self.min_dur),
            "valid_ratio": float(self.valid_ratio),
            "num_trials": int(self.num_trials),
            "seed": int(self.seed),
            "cal_speakers": int(self.cal_speakers),
        }
