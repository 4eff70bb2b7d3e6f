"""The corpus-neutral data preparation: listing -> WAV cache -> manifests.

A corpus module lists its utterances (a :class:`Listing`: one
:class:`SourceUtterance` per input file, plus the inputs it already had to
leave out, as :class:`Skipped`; all three, :class:`PrepOptions`,
:data:`SPLITS` and :data:`DEFAULT_NUM_TRIALS` are defined in
:mod:`deep_speaker_sb.data.inputs` and importable from here);
:func:`prepare_corpus` does the rest, the same way for every corpus:

1. **convert and trim** (:mod:`deep_speaker_sb.data.convert`): every
   source file is read, mixed down to mono, resampled to ``sample_rate``
   (:func:`deep_speaker_sb.dsp.resample`), trimmed of leading and
   trailing silence (:func:`deep_speaker_sb.dsp.trim_silence`) and cached
   as ``wavs/<split>/<SPK>/<UTT>.wav`` (PCM-16), by a pool of worker
   processes; unreadable, empty or silent inputs and utterances shorter
   than ``min_dur`` after trimming are skipped with their reason;
2. **split**: a few ``train`` speakers are held out of training as the
   calibration split (``PrepOptions.cal_speakers``,
   :func:`~deep_speaker_sb.data.manifests.hold_out_speakers`), and the
   other ``train`` utterances are split per speaker into train and valid
   (:func:`~deep_speaker_sb.data.manifests.split_train_valid`);
3. **write** ``train.csv``, ``valid.csv``, ``cal.csv`` (the held-out
   speakers, empty when none), ``cal_trials.txt`` (balanced trials over
   them: the export's score calibration is fitted on these) and
   ``test.csv`` (one
   :class:`~deep_speaker_sb.dataio.SegmentRow` per segment,
   :func:`~deep_speaker_sb.data.manifests.segment_rows`), ``trials.txt``
   (balanced trials over the ``test`` utterances) and ``skipped.csv``
   (every input left out, why);
4. **summarise** into ``prep_summary.json``
   (:func:`~deep_speaker_sb.data.manifests.summarise`), then save
   ``options.json`` (the skip rule of :mod:`deep_speaker_sb.utils`).

A cached WAV is reused when it is newer than its source and the audio
options did not change (``wavs/.audio_options.json``,
:mod:`deep_speaker_sb.data.cache`); every file is written atomically, so
an interrupted preparation is simply run again (and removes the temporary
files the interrupted one left).
Only a bad *input* is skipped: an error writing an output (disk full, no
permission) stops the preparation with an
:class:`~deep_speaker_sb.errors.OutputError` before ``options.json`` is
saved, and a skipped run first checks that every cached WAV the manifests
name still exists (and prepares again when one is missing).

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import glob
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.cache import (
    AUDIO_OPTIONS_FILE,
    WAV_FOLDER,
    cache_complete,
    reset_cache_if_stale,
    writing,
)
from deep_speaker_sb.data.convert import convert_all
from deep_speaker_sb.data.inputs import (
    DEFAULT_NUM_TRIALS,
    SPLITS,
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
)
from deep_speaker_sb.data.manifests import (
    MAX_CAL_SHARE,
    MIN_CAL_SPEAKERS,
    hold_out_speakers,
    hours,
    kept_trials,
    log_incomplete,
    segment_rows,
    split_train_valid,
    summarise,
    write_skipped,
    write_trials,
)
from deep_speaker_sb.data.trials import make_trials
from deep_speaker_sb.dataio import write_manifest
from deep_speaker_sb.errors import ConfigError, DataError
from deep_speaker_sb.utils import (
    OPTIONS_FILE,
    Pathlike,
    outputs_up_to_date,
    save_options,
    write_json,
)

#: What a corpus module imports from here (defined in
#: :mod:`deep_speaker_sb.data.inputs`), and this module's own.
__all__ = [
    "DEFAULT_NUM_TRIALS",
    "OUTPUT_FILES",
    "SPLITS",
    "Listing",
    "PrepOptions",
    "Skipped",
    "SourceUtterance",
    "check_prepared_rate",
    "prepare_corpus",
]

logger = get_logger(__name__)

#: The files of the save folder besides the WAV cache.
OUTPUT_FILES = (
    "train.csv",
    "valid.csv",
    "test.csv",
    "trials.txt",
    "cal.csv",
    "cal_trials.txt",
    "skipped.csv",
    "prep_summary.json",
)


def _remove_temporaries(save_folder: Path) -> None:
    """Removes the temporary files a killed preparation left in the save
    folder (``atomic_write``'s ``.<name>.*.tmp`` of its outputs; those of
    the WAV cache go with
    :func:`~deep_speaker_sb.data.cache.remove_orphans`).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in (".train.csv.x1.tmp", ".options.json.x2.tmp", "keep"):
    ...     _ = (d / name).write_text("")
    >>> _remove_temporaries(d)
    >>> [p.name for p in d.iterdir()]
    ['keep']
    """
    removed = 0
    for name in (*OUTPUT_FILES, OPTIONS_FILE):
        for tmp in save_folder.glob(f".{glob.escape(name)}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %d temporary files of an interrupted run", removed)


def check_prepared_rate(prep_folder: Pathlike, sample_rate: int) -> None:
    """Refuses to train at another rate than the prepared WAVs'.

    The manifests' segment bounds are in samples of the cached WAVs, so
    the YAML's ``sample_rate`` must be the rate ``data_prep.py`` used
    (``prep_summary.json``); without a readable summary nothing is
    checked (reading the manifests reports what is missing).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(d / "prep_summary.json", {"sample_rate": 16000})
    >>> check_prepared_rate(d, 16000)
    >>> check_prepared_rate(d, 8000)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: ... prepared at 16000 Hz ...
    """
    summary = Path(prep_folder) / "prep_summary.json"
    try:
        prepared = json.loads(summary.read_text(encoding="utf-8"))
        rate = int(prepared["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if rate != int(sample_rate):
        raise ConfigError(
            f"{prep_folder} was prepared at {rate} Hz but sample_rate is "
            f"{sample_rate}: add --sample_rate {rate} to the command (the "
            "model's rate must be the prepared WAVs')"
        )


def prepare_corpus(
    data_folder: Pathlike,
    list_utterances: Callable[[Path], Listing],
    save_folder: Pathlike,
    options: PrepOptions,
    corpus_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Prepares a listed corpus: WAV cache, manifests, trials, reports.

    Skips all work (and does not list the corpus) when the outputs exist,
    were made with the same options and data folder (``options.json``)
    and every cached WAV the manifests name exists; prepares again
    (reusing the cached WAVs that exist) when one is missing.

    Arguments
    ---------
    data_folder : Pathlike
        The corpus folder (recorded in the options: another folder means
        another preparation).
    list_utterances : callable
        The corpus-specific step: ``list_utterances(data_folder)`` (the
        folder resolved) returns the :class:`Listing`.
    save_folder : Pathlike
        Where the WAV cache, manifests and reports are written.
    options : PrepOptions
        Audio, segment, split and trial options.
    corpus_options : dict, optional
        What else the listing depends on (the corpus, its trial list,
        its test speakers...): saved in ``options.json`` under
        ``"corpus"``, so that changing it prepares again.

    Returns
    -------
    dict
        The summary (also saved as ``prep_summary.json``): speakers,
        utterances and segments per split, hours before and after
        trimming, the number of skipped inputs and their reasons, the
        cached WAVs reused (``reused_from_cache``), the seconds of audio
        this run converted (``converted_seconds``) and their speed
        (``realtime_factor``; ``None`` when it converted none).  When the
        folder is already prepared, the saved summary with the folder's
        current ``save_folder`` and ``files`` (it may have moved).

    Raises
    ------
    DataError
        When no usable utterance is left in a split.
    ConfigError
        When ``save_folder`` is a file, or ``save_folder/wavs`` holds
        files the preparation did not make.
    OutputError
        When an output cannot be written (disk full, no permission):
        ``options.json`` is not saved, so the next run prepares again.

    Example
    -------
    >>> import tempfile, pathlib, soundfile, numpy as np
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(np.arange(2 * 16000) / 4).astype(np.float32)
    >>> utts = []
    >>> for split, spk in [("train", "A"), ("train", "B"), ("test", "C"),
    ...                    ("test", "D")]:
    ...     for k in range(3):
    ...         src = tmp / f"{spk}{k}.flac"
    ...         soundfile.write(src, tone, 16000)
    ...         utts.append(SourceUtterance(split, f"{spk}{k}", spk,
    ...                                     str(src), "f", ""))
    >>> summary = prepare_corpus(
    ...     tmp, lambda folder: Listing(utts, native_rate=16000),
    ...     tmp / "prep", PrepOptions(num_trials=6))
    >>> summary["speakers"], summary["segments"], summary["trials"]
    ({'train': 2, 'valid': 2, 'test': 2},
     {'train': 4, 'valid': 2, 'test': 6},
     {'target': 3, 'nontarget': 3})
    """
    t0 = time.perf_counter()
    data_folder = Path(data_folder).expanduser().resolve()
    save_folder = Path(save_folder).expanduser()
    files = {name: save_folder / name for name in OUTPUT_FILES}
    wav_root = save_folder / WAV_FOLDER
    outputs = [*files.values(), wav_root / AUDIO_OPTIONS_FILE]
    saved_options = options.saved_options(data_folder)
    if corpus_options is not None:
        saved_options["corpus"] = corpus_options
    if save_folder.exists() and not save_folder.is_dir():
        raise ConfigError(
            f"prepared folder {save_folder} is a file, not a folder; give "
            "another --prep_folder"
        )
    if outputs_up_to_date(
        save_folder, outputs, saved_options
    ) and cache_complete(save_folder, files):
        logger.info("%s already prepared, skipping", save_folder)
        summary = json.loads(
            files["prep_summary.json"].read_text(encoding="utf-8")
        )
        # the folder may have moved since: name where it is now
        return {**summary, **_where(save_folder, files)}
    logger.info("preparing %s into %s", data_folder, save_folder)
    with writing(save_folder):
        save_folder.mkdir(parents=True, exist_ok=True)
        # not "prepared" again until every output is rewritten
        (save_folder / OPTIONS_FILE).unlink(missing_ok=True)
        _remove_temporaries(save_folder)
    listing = list_utterances(data_folder)

    # ---- step 2: convert and trim
    with writing(wav_root / AUDIO_OPTIONS_FILE):
        reset_cache_if_stale(wav_root, options.audio_options(data_folder))
    kept, failed = convert_all(listing.utterances, save_folder, options)
    skipped = sorted(
        [*listing.skipped, *failed], key=lambda s: (s.path, s.utt_id)
    )
    log_incomplete(kept, skipped, files["skipped.csv"])
    with writing(files["skipped.csv"]):
        write_skipped(files["skipped.csv"], skipped)
    by_split = {s: [u for u in kept if u.source.split == s] for s in SPLITS}
    for split, utts in by_split.items():
        if not utts:
            raise DataError(
                f"no usable {split} utterance in {data_folder} "
                f"(see {files['skipped.csv']})"
            )

    # ---- steps 3 and 4: split, manifests and trials
    in_training, cal = hold_out_speakers(
        by_split["train"],
        options.cal_speakers,
        options.seed,
        {u.spk_id: u.source.gender or "" for u in by_split["train"]},
    )
    train, valid = split_train_valid(
        in_training, options.valid_ratio, options.seed
    )
    parts = {"train": train, "valid": valid, "test": by_split["test"]}
    if cal:  # in the summary only when there is one
        parts["cal"] = cal
    rows = {
        name: segment_rows(
            part, options.sample_rate, options.seg_dur, options.min_dur
        )
        for name, part in parts.items()
    }
    for name in ("train", "valid", "cal", "test"):  # cal.csv even empty
        with writing(files[f"{name}.csv"]):
            write_manifest(files[f"{name}.csv"], rows.get(name, []))
    cal_trials = make_trials(
        {u.utt_id: u.spk_id for u in cal}, options.num_trials, options.seed
    )
    with writing(files["cal_trials.txt"]):
        write_trials(files["cal_trials.txt"], cal_trials)
    if cal:
        logger.info(
            "held out %d training speakers for calibration (cal.csv, "
            "%d trials in cal_trials.txt)",
            len({u.spk_id for u in cal}),
            len(cal_trials),
        )
    elif options.cal_speakers:
        logger.info(
            "no training speaker held out for calibration: %d are too few "
            "(at least %d needed); the export calibrates on validation "
            "trials",
            len({u.spk_id for u in by_split["train"]}),
            math.ceil(MIN_CAL_SPEAKERS / MAX_CAL_SHARE),
        )
    if listing.trials is None:
        trials = make_trials(
            {u.utt_id: u.spk_id for u in by_split["test"]},
            options.num_trials,
            options.seed,
        )
    else:
        trials = kept_trials(listing.trials, by_split["test"])
    with writing(files["trials.txt"]):
        write_trials(files["trials.txt"], trials)

    # ---- step 5: summary
    counts = summarise(
        parts,
        rows,
        kept,
        skipped,
        trials,
        listing.native_rate,
        options.sample_rate,
    )
    if listing.trials is not None:
        counts["trials"]["official"] = len(listing.trials)
        counts["trials"]["dropped"] = len(listing.trials) - len(trials)
    elapsed = time.perf_counter() - t0
    # the speed of this run's work: audio reused from the cache is not
    # counted (a resumed run would claim it converted it all)
    reused = sum(1 for u in kept if u.reused)
    new_seconds = sum(u.raw_seconds for u in kept if not u.reused)
    where = _where(save_folder, files)
    summary = {
        "data_folder": str(data_folder),
        "save_folder": where["save_folder"],
        **counts,
        "prep_seconds": round(elapsed, 2),
        "reused_from_cache": reused,
        "converted_seconds": round(new_seconds, 3),
        "realtime_factor": (
            round(new_seconds / max(elapsed, 1e-9), 1) if new_seconds else None
        ),
        "files": where["files"],
    }
    with writing(files["prep_summary.json"]):
        write_json(files["prep_summary.json"], summary)
    with writing(save_folder / OPTIONS_FILE):
        save_options(save_folder, saved_options)
    converted = (
        f"converted {hours(new_seconds):.2f} h "
        f"({summary['realtime_factor']} x real time)"
        if new_seconds
        else "converted nothing"
    )
    logger.info(
        "prepared %.2f h of audio (%.2f h after trimming) in %.1f s; "
        "%s, %d utterances reused from cache",
        summary["hours_before_trim"]["total"],
        summary["hours_after_trim"]["total"],
        elapsed,
        converted,
        reused,
    )
    return summary


def _where(save_folder: Path, files: dict[str, Path]) -> dict[str, Any]:
    """The summary's ``save_folder`` and ``files``: where they are now."""
    return {
        "save_folder": str(save_folder.resolve()),
        "files": {k: str(v.resolve()) for k, v in files.items()},
    }
