"""The manifest format: its row types, its one reader and writer, and the
audio pipelines of the training stages.

A manifest (``train.csv``, ``valid.csv``, ``test.csv``; see
``docs/DESIGN.md``) holds one :class:`SegmentRow` per segment of an
utterance; the utterance id of a row is the stem of its ``wav`` path, and
an :class:`Utterance` is one whole cached WAV.  Every part of the project
reads manifests with :func:`read_manifest` (checked: columns, bounds,
existing audio) and writes them with :func:`write_manifest`.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from speechbrain.dataio.dataio import read_audio
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes
from torch import Tensor

from deep_speaker_sb.errors import DataError, MissingFileError
from deep_speaker_sb.utils import Pathlike, atomic_write

#: Columns of ``train.csv``, ``valid.csv`` and ``test.csv``, in order.
CSV_FIELDS = [
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "spk_id",
    "gender",
    "words",
]
#: Columns every reader needs (``gender`` and ``words`` may be absent).
REQUIRED_COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id")
#: Placeholder for the prepared folder in the ``wav`` column.
DATA_ROOT = "{data_root}"

#: What every manifest error message tells the user to do.
PREP_HINT = "prepare the data again with data_prep.py"


def resolve_wav(path: str, data_root: Pathlike) -> str:
    """Substitutes the prepared folder for ``{data_root}`` in a wav path.

    The manifests write ``{data_root}/wavs/...``; SpeechBrain's own
    ``from_csv`` only substitutes ``$data_root``, so both spellings are
    handled here.

    Example
    -------
    >>> resolve_wav("{data_root}/wavs/a.wav", "/data/vivos8k")
    '/data/vivos8k/wavs/a.wav'
    """
    root = str(data_root)
    return path.replace(DATA_ROOT, root).replace("$data_root", root)


@dataclasses.dataclass(frozen=True)
class SegmentRow:
    """One manifest row: a segment ``[start, stop)`` (samples) of a WAV.

    Example
    -------
    >>> row = SegmentRow("U1_0", 3.0, "{data_root}/wavs/S/U1.wav",
    ...                  0, 24000, "S", "m", "xin chào")
    >>> row.utt_id, row.as_csv()["wav"]
    ('U1', '{data_root}/wavs/S/U1.wav')
    """

    ID: str
    duration: float
    wav: str
    start: int
    stop: int
    spk_id: str
    gender: str = ""
    words: str = ""

    @property
    def utt_id(self) -> str:
        """The utterance id: the stem of the ``wav`` path."""
        return Path(self.wav).stem

    def as_csv(self) -> dict[str, Any]:
        """The row as a ``CSV_FIELDS`` dict (for :class:`csv.DictWriter`)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Utterance:
    """A whole utterance of a manifest: its id, speaker and WAV path."""

    utt_id: str
    spk_id: str
    wav: str


def write_manifest(path: Pathlike, rows: Iterable[SegmentRow]) -> None:
    """Writes a manifest atomically (a failure leaves no partial file).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> write_manifest(p, [SegmentRow("U_0", 1.0, "U.wav", 0, 8000, "S")])
    >>> p.read_text().splitlines()[1]
    'U_0,1.0,U.wav,0,8000,S,,'
    """
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_csv())


def _parse_row(raw: Mapping[str, str], csv_path: Path, root: str):
    try:
        start, stop = int(raw["start"]), int(raw["stop"])
        duration = float(raw["duration"])
    except (TypeError, ValueError):
        start, stop, duration = 0, -1, 0.0
    if not 0 <= start < stop:
        raise DataError(
            f"manifest {csv_path}, row {raw['ID']}: bad segment bounds "
            f"start={raw['start']} stop={raw['stop']}; {PREP_HINT}"
        )
    return SegmentRow(
        ID=raw["ID"],
        duration=duration,
        wav=resolve_wav(raw["wav"], root),
        start=start,
        stop=stop,
        spk_id=raw["spk_id"],
        gender=raw.get("gender") or "",
        words=raw.get("words") or "",
    )


def read_manifest(
    csv_path: Pathlike,
    data_root: Pathlike | None = None,
    *,
    check_audio: bool = True,
) -> list[SegmentRow]:
    """Reads and checks a manifest; the one reader of the project.

    Checks that the file exists and has rows, the required columns and
    sane segment bounds, and (``check_audio``) that every WAV it names
    exists (each distinct path once, so it stays cheap).

    Arguments
    ---------
    csv_path : Pathlike
        ``train.csv``, ``valid.csv`` or ``test.csv``.
    data_root : Pathlike, optional
        Substituted for ``{data_root}``; by default the manifest's folder.
    check_audio : bool
        Whether to check that the WAVs exist.

    Returns
    -------
    list of SegmentRow
        The rows, in file order, with resolved ``wav`` paths.

    Raises
    ------
    MissingFileError
        When the manifest or a WAV it names does not exist.
    DataError
        When it lacks columns or rows, or a row has bad bounds.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "train.csv").write_text(",".join(CSV_FIELDS) + "\\n")
    >>> read_manifest(d / "train.csv")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: manifest ... has no rows; ...
    >>> _ = (d / "test.csv").write_text(
    ...     "ID,duration,wav,start,stop,spk_id\\n"
    ...     "A_1_0,1.0,{data_root}/A_1.wav,0,8000,A\\n")
    >>> read_manifest(d / "test.csv", check_audio=False)[0].wav == str(
    ...     d / "A_1.wav")
    True
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise MissingFileError(f"manifest {csv_path} not found; {PREP_HINT}")
    root = str(csv_path.parent if data_root is None else data_root)
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(
                f"manifest {csv_path} lacks columns {missing}; {PREP_HINT}"
            )
        rows = [_parse_row(raw, csv_path, root) for raw in reader]
    if not rows:
        raise DataError(f"manifest {csv_path} has no rows; {PREP_HINT}")
    if check_audio:
        seen: set[str] = set()
        for row in rows:
            if row.wav in seen:
                continue
            if not os.path.isfile(row.wav):
                raise MissingFileError(
                    f"audio file {row.wav} (manifest {csv_path.name}, row "
                    f"{row.ID}) does not exist; {PREP_HINT}"
                )
            seen.add(row.wav)
    return rows


def utterances(rows: Iterable[SegmentRow]) -> dict[str, Utterance]:
    """The whole utterances of manifest rows, sorted by utterance id.

    Example
    -------
    >>> rows = [SegmentRow("U1_0", 3.0, "/d/S/U1.wav", 0, 3, "S"),
    ...         SegmentRow("U1_1", 1.0, "/d/S/U1.wav", 3, 4, "S"),
    ...         SegmentRow("U0_0", 2.0, "/d/S/U0.wav", 0, 2, "S")]
    >>> list(utterances(rows).values())  # doctest: +NORMALIZE_WHITESPACE
    [Utterance(utt_id='U0', spk_id='S', wav='/d/S/U0.wav'),
     Utterance(utt_id='U1', spk_id='S', wav='/d/S/U1.wav')]
    """
    utts: dict[str, Utterance] = {}
    for row in rows:
        if row.utt_id not in utts:
            utts[row.utt_id] = Utterance(row.utt_id, row.spk_id, row.wav)
    return dict(sorted(utts.items()))


def speaker_utterances(
    utts: Mapping[str, Utterance] | Iterable[Utterance],
) -> dict[str, list[Utterance]]:
    """Speaker id -> its utterances (sorted by speaker, then utterance).

    Example
    -------
    >>> utts = [Utterance("b", "S1", "b.wav"), Utterance("a", "S1", "a.wav")]
    >>> [u.utt_id for u in speaker_utterances(utts)["S1"]]
    ['a', 'b']
    """
    values = utts.values() if isinstance(utts, Mapping) else utts
    spk2utts: dict[str, list[Utterance]] = {}
    for utt in sorted(values, key=lambda u: u.utt_id):
        spk2utts.setdefault(utt.spk_id, []).append(utt)
    return dict(sorted(spk2utts.items()))


def check_valid_speakers(
    train_rows: Sequence[SegmentRow], valid_rows: Sequence[SegmentRow]
) -> None:
    """Checks that every validation speaker is a training speaker.

    Example
    -------
    >>> a = [SegmentRow("A_0", 1.0, "A.wav", 0, 1, "A")]
    >>> b = [SegmentRow("B_0", 1.0, "B.wav", 0, 1, "B")]
    >>> check_valid_speakers(a, a)
    >>> check_valid_speakers(a, b)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: validation speakers ['B'] ...
    """
    check_speaker_sets(
        {r.spk_id for r in train_rows}, {r.spk_id for r in valid_rows}
    )


def check_speaker_sets(train_spk: set[str], valid_spk: set[str]) -> None:
    """:func:`check_valid_speakers` on speaker sets (e.g. of shard lists).

    Example
    -------
    >>> check_speaker_sets({"A", "B"}, {"B"})
    """
    unknown = sorted(valid_spk - train_spk)
    if unknown:
        shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
        raise DataError(
            f"validation speakers {shown} never occur in the training "
            f"manifest, so they cannot be classified; {PREP_HINT}"
        )


def segment_dataset(rows: Sequence[SegmentRow]) -> DynamicItemDataset:
    """A ``DynamicItemDataset`` over manifest rows, keyed by ``ID``.

    Example
    -------
    >>> data = segment_dataset(
    ...     [SegmentRow("u_0", 1.5, "/prep/u.wav", 0, 12000, "S1")])
    >>> data.set_output_keys(["id", "wav", "duration", "spk_id"])
    >>> data[0]
    {'id': 'u_0', 'wav': '/prep/u.wav', 'duration': 1.5, 'spk_id': 'S1'}
    """
    data = {}
    for row in rows:
        item = row.as_csv()
        del item["ID"]
        data[row.ID] = item
    return DynamicItemDataset(data)


def read_segment(
    wav: str,
    start: int | None = None,
    stop: int | None = None,
    where: str = "",
) -> Tensor:
    """Reads a WAV (or its samples ``[start, stop)``); a file that cannot
    be read is a :class:`~deep_speaker_sb.errors.DataError` naming it and
    ``where`` it comes from (the manifest row).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> _ = p.write_bytes(b"not audio")
    >>> read_segment(str(p), 0, 10, where="manifest train.csv, row a_0")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: audio file ...a.wav (manifest ...
    """
    spec = wav if start is None else {"file": wav, "start": start, "stop": stop}
    try:
        return read_audio(spec)
    except (RuntimeError, OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        origin = f" ({where})" if where else ""
        raise DataError(
            f"audio file {wav}{origin} cannot be read: {msg[:200]}; {PREP_HINT}"
        ) from None


def audio_pipeline(
    sentence_len: float | None,
    sample_rate: int,
    *,
    random_crop: bool,
    manifest: Pathlike | None = None,
) -> Callable:
    """Makes the ``id, wav, start, stop -> sig`` dynamic item of segments.

    Arguments
    ---------
    sentence_len : float, optional
        Crop length in seconds; ``None`` reads whole segments.
    sample_rate : int
        Sample rate of the prepared WAVs.
    random_crop : bool
        True: a random ``sentence_len`` crop of longer segments (training);
        False: the whole segment.  Shorter segments are taken whole (the
        batch collation pads them and passes their relative lengths).
    manifest : Pathlike, optional
        The manifest of the rows, named (with the row) when a WAV cannot
        be read (:func:`read_segment`).

    Returns
    -------
    callable
        A pipeline function for ``DynamicItemDataset.add_dynamic_item``.

    Example
    -------
    >>> import tempfile, pathlib, soundfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(p, torch.rand(16000).numpy() - 0.5, 8000)
    >>> crop = audio_pipeline(1.0, 8000, random_crop=True)
    >>> crop.func("a_0", str(p), 1000, 13000).shape
    torch.Size([8000])
    >>> whole = audio_pipeline(1.0, 8000, random_crop=False)
    >>> whole.func("a_0", str(p), 1000, 13000).shape
    torch.Size([12000])
    """
    seg = None if sentence_len is None else round(sentence_len * sample_rate)
    source = (
        "manifest" if manifest is None else f"manifest {Path(manifest).name}"
    )

    @takes("id", "wav", "start", "stop")
    @provides("sig")
    def pipeline(row_id: str, wav: str, start: int, stop: int) -> Tensor:
        start, stop = int(start), int(stop)
        if random_crop and seg is not None and stop - start > seg:
            start += int(torch.randint(0, stop - start - seg + 1, ()).item())
            stop = start + seg
        return read_segment(wav, start, stop, f"{source}, row {row_id}")

    return pipeline


def utterance_pipeline(manifest: Pathlike | None = None) -> Callable:
    """Makes the ``id, wav -> sig`` dynamic item of whole cached WAVs (an
    utterance's embedding input); an unreadable WAV is a ``DataError``
    naming ``manifest`` and the utterance."""
    source = (
        "manifest" if manifest is None else f"manifest {Path(manifest).name}"
    )

    @takes("id", "wav")
    @provides("sig")
    def pipeline(utt_id: str, wav: str) -> Tensor:
        return read_segment(wav, where=f"{source}, utterance {utt_id}")

    return pipeline


def utterance_dataset(
    utts: Mapping[str, Utterance], manifest: Pathlike | None = None
) -> DynamicItemDataset:
    """Whole utterances as a dataset with ``id``, ``sig`` and ``spk_id``
    (``manifest``: where they come from, named when a WAV cannot be
    read).

    Example
    -------
    >>> data = utterance_dataset({"U": Utterance("U", "S", "/x/U.wav")})
    >>> data.set_output_keys(["id", "spk_id"])
    >>> data[0]
    {'id': 'U', 'spk_id': 'S'}
    """
    data = {u.utt_id: {"wav": u.wav, "spk_id": u.spk_id} for u in utts.values()}
    return DynamicItemDataset(
        data,
        dynamic_items=[utterance_pipeline(manifest)],
        output_keys=["id", "sig", "spk_id"],
    )
