"""VIVOS preparation: a trimmed 8 kHz WAV cache and SpeechBrain manifests.

:func:`list_vivos` lists a VIVOS corpus (or a corpus in the same layout,
such as :mod:`deep_speaker_sb.data.synthetic`'s)::

    vivos/
      train/waves/<SPK>/<UTT>.wav   train/prompts.txt   train/genders.txt
      test/waves/<SPK>/<UTT>.wav    test/prompts.txt    test/genders.txt

(``prompts.txt`` lines look like ``VIVOSSPK01_R001 KHÁCH SẠN``,
``genders.txt`` lines like ``VIVOSSPK01 m``; the speaker id of an
utterance is its id before the last ``_``); :func:`prepare_vivos` hands
that listing to :func:`deep_speaker_sb.data.prep.prepare_corpus`, which
writes into the save folder the files described in ``docs/DESIGN.md``:

- ``wavs/{train,test}/<SPK>/<UTT>.wav``: mono PCM-16 WAV at
  ``sample_rate`` with leading and trailing silence trimmed, so training
  never resamples;
- ``train.csv``, ``valid.csv`` (the train speakers, split per speaker by
  utterance), ``test.csv`` (the unseen test speakers): one row per segment
  of at most ``seg_dur`` seconds;
- ``trials.txt`` (balanced verification trials over the test utterances),
  ``skipped.csv`` (every input left out, with why), ``prep_summary.json``
  and ``options.json`` (the skip rule of :mod:`deep_speaker_sb.utils`).

Bad input never stops the preparation: unreadable, empty or silent WAVs
and utterances shorter than ``min_dur`` after trimming are skipped and
listed in ``skipped.csv``, as are prompts without a WAV and ``*.wav``
names that are no file (a dangling symlink, a folder); symlinked speaker
folders are followed (each real folder once); stereo files are mixed down
and other sample rates resampled; a speaker missing from ``genders.txt``
(or on a line without a gender) is kept with gender ``unknown`` and a WAV
without a prompt is kept with empty ``words`` (both with a logged warning
and a count in the summary).  ``prompts.txt`` and ``genders.txt`` are
UTF-8, or UTF-16 with a byte-order mark (decoded, with a warning); any
other encoding is one :class:`~deep_speaker_sb.errors.DataError`, never
garbled words.  An error writing an output (disk full, no permission) does
stop it, with one :class:`~deep_speaker_sb.errors.OutputError` and nothing
marked prepared, so the next run redoes what is missing.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.prep import (
    SPLITS,
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
    prepare_corpus,
)
from deep_speaker_sb.errors import DataError, MissingFileError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Sample rate of the VIVOS recordings; other rates are counted as
#: conversions in the summary.
VIVOS_SAMPLE_RATE = 16000


# --------------------------------------------------------------------------
# Step 1: the VIVOS listing
# --------------------------------------------------------------------------


def _check_layout(data_folder: Path) -> None:
    if not data_folder.exists():
        raise MissingFileError(
            f"data folder not found: {data_folder} (give the VIVOS folder "
            "that holds train/waves and test/waves)"
        )
    missing = [
        f"{s}/waves" for s in SPLITS if not (data_folder / s / "waves").is_dir()
    ]
    if missing:
        hint = ""
        for child in sorted(data_folder.glob("*/train/waves")):
            hint = f"; did you mean {child.parent.parent}?"
            break
        raise DataError(
            f"{data_folder} is not a VIVOS folder: no "
            f"{' or '.join(missing)} in it{hint}"
        )


#: Byte-order marks of the encodings :func:`_decode_text` accepts besides
#: UTF-8 (the UTF-32 ones first: they start like UTF-16's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode_text(path: Path) -> str:
    """The text of a prompts / genders file: UTF-8, or UTF-16 / UTF-32
    with a byte-order mark (decoded, with a warning).

    Raises
    ------
    DataError
        For any other encoding (Latin-1, Windows-1258, UTF-16 without a
        byte-order mark): guessing would put garbled words in the
        manifests.

    Example
    -------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "prompts.txt"
    >>> _ = f.write_text("A_1 XIN CHÀO\\n", encoding="utf-16")
    >>> _decode_text(f)
    'A_1 XIN CHÀO\\n'
    >>> _ = f.write_text("A_1 CAFÉ\\n", encoding="latin-1")
    >>> _decode_text(f)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: ...prompts.txt is not UTF-8 (line 1: ...
    """
    data = path.read_bytes()
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            if encoding != "utf-8-sig":
                logger.warning("%s is %s: decoded it", path, encoding.upper())
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break  # a BOM, then something else: the error below
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex().upper()
        raise DataError(
            f"{path} is not UTF-8 (line {line}: byte 0x{byte}); save it as "
            "UTF-8 (e.g. iconv -f WINDOWS-1258 -t UTF-8, or -f UTF-16 for "
            "UTF-16 without a byte-order mark) and run again"
        ) from None


def _read_pairs(path: Path) -> list[tuple[int, str, str]]:
    """The ``key rest-of-line`` lines of prompts.txt or genders.txt, with
    their line numbers."""
    if not path.is_file():
        logger.warning("%s not found", path)
        return []
    pairs = []
    for number, line in enumerate(_decode_text(path).splitlines(), 1):
        parts = line.strip().split(maxsplit=1)
        if parts:
            rest = parts[1].strip() if parts[1:] else ""
            pairs.append((number, parts[0], rest))
    return pairs


def _read_table(path: Path) -> dict[str, str]:
    """``key rest-of-line`` files (prompts.txt) as a dict.  A key given
    twice keeps its first line; with another text, that is warned about
    (the last line won, silently).

    Example
    -------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "prompts.txt"
    >>> _ = f.write_text("A_1 XIN\\nA_2 CHAO\\nA_1 XIN\\n")
    >>> _read_table(f)
    {'A_1': 'XIN', 'A_2': 'CHAO'}
    """
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, key, value in _read_pairs(path):
        if key not in table:
            table[key] = value
            first_line[key] = number
        elif table[key] != value:
            logger.warning(
                "%s: %s is on line %d (%r) and again on line %d (%r); "
                "kept line %d",
                path,
                key,
                first_line[key],
                table[key],
                number,
                value,
                first_line[key],
            )
    return table


def _read_genders(data_folder: Path) -> dict[str, str]:
    """Speaker -> gender of both splits' ``genders.txt``; a bare speaker
    line (no gender) is warned about and sets nothing, and a speaker
    given two genders keeps the first (warned about)."""
    genders: dict[str, str] = {}
    where: dict[str, str] = {}
    for split in SPLITS:
        path = data_folder / split / "genders.txt"
        for number, spk, gender in _read_pairs(path):
            known = genders.get(spk)
            if not gender:
                logger.warning(
                    "%s: speaker %s has no gender; %s",
                    path,
                    spk,
                    f"kept {known!r}" if known else "left unknown",
                )
            elif known is None:
                genders[spk] = gender.lower()
                where[spk] = f"{path} line {number}"
            elif known != gender.lower():
                logger.warning(
                    "%s line %d: speaker %s is %r here but %r on %s; kept %r",
                    path,
                    number,
                    spk,
                    gender.lower(),
                    known,
                    where[spk],
                    known,
                )
    return genders


def _list_wavs(waves: Path) -> tuple[list[Path], list[Skipped]]:
    """The ``*.wav`` files under ``waves``, following symlinked folders
    (each real folder once, so a symlink cycle ends), and the ``*.wav``
    names that are no file (a dangling symlink, a folder), skipped."""
    found: list[Path] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(waves, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink back to a folder already listed
            dirs.clear()
            continue
        seen.add(real)
        for name in [*dirs, *names]:
            path = Path(folder) / name
            if path.suffix.lower() != ".wav" or name.startswith("."):
                continue
            if path.is_file():
                found.append(path)
                continue
            why = (
                "a folder"
                if path.is_dir()
                else "a dangling symlink"
                if path.is_symlink()
                else "not a regular file"
            )
            skipped.append(Skipped(str(path), path.stem, f"not a file: {why}"))
        dirs[:] = sorted(d for d in dirs if Path(d).suffix.lower() != ".wav")
    return sorted(found), skipped


def list_vivos(data_folder: Pathlike) -> Listing:
    """Lists the utterances of a VIVOS corpus (or one in its layout).

    The speaker of ``<SPK>_<UTT>.wav`` is ``<SPK>``; its gender comes from
    ``genders.txt`` and its words from ``prompts.txt`` (``None`` when they
    are missing there).  Left out, with their reason: a WAV whose name is
    not ``<SPK>_<UTT>``, a second WAV with the same utterance id, a test
    WAV of a train speaker, a ``*.wav`` that is no file (a dangling
    symlink, a folder) and a prompt without a WAV.  Symlinked folders are
    followed, each real folder once.

    Arguments
    ---------
    data_folder : Pathlike
        The VIVOS folder, holding ``train/waves`` and ``test/waves``.

    Returns
    -------
    Listing
        Train then test utterances, each in sorted path order.

    Raises
    ------
    MissingFileError
        If ``data_folder`` does not exist.
    DataError
        If it is not in the VIVOS layout, or ``prompts.txt`` /
        ``genders.txt`` is in an encoding it cannot tell.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.data.synthetic import generate_corpus
    >>> corpus = generate_corpus(pathlib.Path(tempfile.mkdtemp()) / "v",
    ...     n_train_speakers=1, n_test_speakers=1, utts_per_speaker=2)
    >>> listing = list_vivos(corpus)
    >>> [(u.split, u.utt_id) for u in listing.utterances]
    [('train', 'VIVOSSPK01_R001'), ('train', 'VIVOSSPK01_R002'),
     ('test', 'VIVOSDEV01_R001'), ('test', 'VIVOSDEV01_R002')]
    >>> listing.skipped, listing.native_rate
    ((), 16000)
    """
    data_folder = Path(data_folder)
    _check_layout(data_folder)
    split_prompts = {
        s: _read_table(data_folder / s / "prompts.txt") for s in SPLITS
    }
    prompts = {**split_prompts["train"], **split_prompts["test"]}
    genders = _read_genders(data_folder)

    skipped: list[Skipped] = []
    utterances: list[SourceUtterance] = []
    first_seen: dict[str, str] = {}
    train_spks: set[str] = set()
    listed: set[str] = set()  # every WAV's utterance id, kept or not
    for split in SPLITS:
        wavs, not_files = _list_wavs(data_folder / split / "waves")
        skipped.extend(not_files)
        listed.update(s.utt_id for s in not_files)
        for path in wavs:
            utt = path.stem
            listed.add(utt)
            spk, sep, rest = utt.rpartition("_")
            reason = None
            if not sep or not spk or not rest:
                reason = "bad utterance id: not <SPK>_<UTT>"
            elif utt in first_seen:
                reason = f"duplicate utterance id: also {first_seen[utt]}"
            elif split == "test" and spk in train_spks:
                reason = "test speaker also in train: kept out of test"
            if reason:
                skipped.append(Skipped(str(path), utt, reason))
                continue
            first_seen[utt] = str(path)
            if split == "train":
                train_spks.add(spk)
            utterances.append(
                SourceUtterance(
                    split,
                    utt,
                    spk,
                    str(path),
                    gender=genders.get(spk),
                    words=prompts.get(utt),
                )
            )
    for split in SPLITS:
        waves = data_folder / split / "waves"
        for utt in sorted(set(split_prompts[split]) - listed):
            expected = waves / utt.rpartition("_")[0] / f"{utt}.wav"
            skipped.append(Skipped(str(expected), utt, "prompt without wav"))
    return Listing(utterances, VIVOS_SAMPLE_RATE, tuple(skipped))


# --------------------------------------------------------------------------
# The preparation
# --------------------------------------------------------------------------


def prepare_vivos(
    data_folder: Pathlike,
    save_folder: Pathlike,
    *,
    sample_rate: int = PrepOptions.sample_rate,
    seg_dur: float = PrepOptions.seg_dur,
    min_dur: float = PrepOptions.min_dur,
    valid_ratio: float = PrepOptions.valid_ratio,
    num_trials: int = PrepOptions.num_trials,
    seed: int = PrepOptions.seed,
    cal_speakers: int = PrepOptions.cal_speakers,
    num_workers: int = PrepOptions.num_workers,
    trim_db: float = PrepOptions.trim_db,
    trim_margin: float = PrepOptions.trim_margin,
) -> dict[str, Any]:
    """Prepares VIVOS (or a corpus in its layout) for speaker recognition.

    Lists the corpus with :func:`list_vivos`, then hands the listing to
    :func:`deep_speaker_sb.data.prep.prepare_corpus`.  Skips all work when
    the outputs exist and were made with the same options
    (``options.json``); a cached WAV is reused when it is newer than its
    source and the audio options (``data_folder``, ``sample_rate``,
    ``trim_db``, ``trim_margin``) did not change.

    Arguments
    ---------
    data_folder : Pathlike
        The VIVOS folder, holding ``train/waves`` and ``test/waves``.
    save_folder : Pathlike
        Where the WAV cache, manifests and reports are written.
    sample_rate, seg_dur, min_dur, valid_ratio, num_trials : optional
        Sample rate of the cached WAVs; longest segment of a manifest row
        and shortest segment or trimmed utterance kept (seconds); share of
        each train speaker's utterances put in ``valid.csv``; number of
        trials in ``trials.txt``.
    seed, cal_speakers, num_workers, trim_db, trim_margin : optional
        Seed of the split and trials; training speakers held out as the
        calibration split (``cal.csv``, ``cal_trials.txt``); audio
        conversion processes (the outputs do not depend on it);
        silence threshold below the loudness (dB, ``0``: no trimming)
        and seconds kept around the speech.  See
        :class:`~deep_speaker_sb.data.prep.PrepOptions`, whose defaults
        they are.

    Returns
    -------
    dict
        The summary of
        :func:`~deep_speaker_sb.data.prep.prepare_corpus`, as saved in
        ``prep_summary.json``.

    Raises
    ------
    ConfigError
        If an option is out of range, or the save folder holds a ``wavs``
        folder that the preparation did not make.
    MissingFileError
        If ``data_folder`` does not exist.
    DataError
        If it is not in the VIVOS layout, or no usable utterance is left
        in a split.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.data.synthetic import generate_corpus
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> corpus = generate_corpus(tmp / "vivos", n_train_speakers=2,
    ...     n_test_speakers=2, utts_per_speaker=3, seed=0)
    >>> summary = prepare_vivos(corpus, tmp / "prep")
    >>> summary["speakers"]
    {'train': 2, 'valid': 2, 'test': 2}
    >>> sorted(p.name for p in (tmp / "prep").glob("*.csv"))
    ['cal.csv', 'skipped.csv', 'test.csv', 'train.csv', 'valid.csv']
    """
    options = PrepOptions(
        sample_rate=sample_rate,
        seg_dur=seg_dur,
        min_dur=min_dur,
        valid_ratio=valid_ratio,
        num_trials=num_trials,
        seed=seed,
        cal_speakers=cal_speakers,
        num_workers=num_workers,
        trim_db=trim_db,
        trim_margin=trim_margin,
    )
    data_folder = Path(data_folder).expanduser().resolve()
    _check_layout(data_folder)
    return prepare_corpus(data_folder, list_vivos, save_folder, options)
