"""Sharded training data: WebDataset tar shards of the prepared segments.

For corpora that outgrow one disk or one machine's page cache, the
segments of ``train.csv`` and ``valid.csv`` are also written as WebDataset
tar shards (:func:`write_shards`, run by ``data_prep.py --format shards``).
The CSV manifests and the cached WAVs stay the source of truth: the shards
are written from them, so both describe the same segments, and a shard
list records which.  ``test.csv`` stays CSV only (the trials embed whole
test utterances from the WAV cache).

Layout, per split (``train``, ``valid``, and ``train_by_speaker`` when
asked for)::

    <save_folder>/shards/<split>/shard-000000.tar ...
    <save_folder>/shards/<split>/shardlist.json
    <save_folder>/shards/<split>/shard_options.json   (the skip rule)

A shard holds, per segment, ``<key>.wav`` (the segment's samples as PCM-16
WAV) and ``<key>.json`` (``ID``, ``spk_id``, ``duration``, ``gender``,
``words``, ``utt_id``, ``start``, ``stop``); the key is the row number in
the manifest.  The segments are shuffled (``seed``) before being cut into
shards of equal size (at most ``shard_size``), so every shard mixes many
speakers.  ``train_by_speaker`` holds the segments of ``train.csv`` again
in runs of one speaker (each speaker's segments shuffled and cut into runs of
``speaker_run`` segments, the runs shuffled): every run in the triplet
stage's speaker buffer is a speaker ready to give K segments (K <=
``speaker_run``), so a buffer of a few P x ``speaker_run`` segments is
enough whatever the number of speakers, where from the mixed shards a
corpus of many speakers needs about K buffered segments per speaker.
``shardlist.json`` gives the shards (file names relative to the list's
folder, or absolute paths) with their segment counts, and the speakers
with their segment counts in manifest order.

Reading (:class:`ShardDataset` for the softmax stage,
:class:`SpeakerShardBatches` for the triplet stage) yields whole padded
batches, so a ``DataLoader`` over them takes ``batch_size=None``
(:func:`make_shard_loader`).  Under DDP, every rank reads its own shards:
the epoch's shard order (seeded by ``seed`` and the epoch) is dealt out
to the ranks, then to each rank's DataLoader workers.  Every rank must
take the same number of optimizer steps, so a rank with fewer training
batches than the others re-reads its first shards for the missing ones
(padding); the segments are otherwise seen exactly once per epoch across
the ranks.  An epoch cannot resume in the middle: a run resumed from an
intra-epoch checkpoint restarts that epoch.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import webdataset
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.logger import get_logger
from torch.utils.data import DataLoader, IterableDataset

from deep_speaker_sb.data.sampler import dist_info
from deep_speaker_sb.dataio import (
    PREP_HINT,
    SegmentRow,
    check_speaker_sets,
    read_manifest,
)
from deep_speaker_sb.errors import (
    ConfigError,
    DataError,
    MissingFileError,
    UserError,
)
from deep_speaker_sb.utils import (
    Pathlike,
    atomic_write,
    outputs_up_to_date,
    save_options,
    write_json,
)

logger = get_logger(__name__)

#: The splits written as shards (``test.csv`` stays CSV only).
SHARD_SPLITS = ("train", "valid")
#: The training segments again, grouped by speaker (the triplet stage's
#: shards for corpora of many speakers; ``data_prep.py --speaker_shards``).
SPEAKER_SPLIT = "train_by_speaker"
#: Segments per run of one speaker in :data:`SPEAKER_SPLIT` (>= K).
DEFAULT_SPEAKER_RUN = 8
#: Segments per shard, at most (about 140 MB of 3 s segments at 8 kHz).
DEFAULT_SHARD_SIZE = 3000
#: The shard list's file name, in ``<save_folder>/shards/<split>/``.
SHARD_LIST = "shardlist.json"
#: The saved options of the skip rule, beside the shard list.
SHARD_OPTIONS = "shard_options.json"
#: Version of the shard layout (part of the skip rule).
SHARD_VERSION = 1
#: ``data_format`` values of the training YAMLs.
DATA_FORMATS = ("csv", "shards")
SHARDS_HINT = "write them with data_prep.py --format shards"


def shard_folder(save_folder: Pathlike, split: str) -> Path:
    """The folder of a split's shards: ``<save_folder>/shards/<split>``.

    Example
    -------
    >>> shard_folder("data/vivos8k", "train").as_posix()
    'data/vivos8k/shards/train'
    """
    return Path(save_folder) / "shards" / split


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _segment_wav(row: SegmentRow) -> bytes:
    """The segment's samples of its cached WAV, as PCM-16 WAV bytes."""
    with soundfile.SoundFile(row.wav) as f:
        f.seek(row.start)
        samples = f.read(row.stop - row.start, dtype="int16")
        rate = f.samplerate
    if len(samples) != row.stop - row.start:
        raise DataError(
            f"segment {row.ID} ends at sample {row.stop} but {row.wav} "
            f"is shorter; {PREP_HINT}"
        )
    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype="PCM_16", format="WAV")
    return out.getvalue()


def _sample(index: int, row: SegmentRow) -> dict[str, Any]:
    meta = {
        "ID": row.ID,
        "spk_id": row.spk_id,
        "duration": row.duration,
        "gender": row.gender,
        "words": row.words,
        "utt_id": row.utt_id,
        "start": row.start,
        "stop": row.stop,
    }
    return {"__key__": f"{index:09d}", "wav": _segment_wav(row), "json": meta}


def _speaker_counts(rows: Sequence[SegmentRow]) -> list[list[Any]]:
    """``[speaker, segments]`` pairs in order of first appearance."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.spk_id] = counts.get(row.spk_id, 0) + 1
    return [[spk, n] for spk, n in counts.items()]


def segment_order(
    rows: Sequence[SegmentRow], seed: int, speaker_run: int = 0
) -> np.ndarray:
    """The order of the manifest rows in the shards.

    Shuffled; with ``speaker_run`` > 0, in runs of that many rows of one
    speaker (each speaker's rows shuffled and cut into runs, a shorter
    last run included, the runs shuffled).

    Example
    -------
    >>> rows = [SegmentRow(f"{s}{k}", 1.0, "a.wav", 0, 1, s)
    ...         for k in range(4) for s in "AB"]
    >>> spk = [rows[i].spk_id for i in segment_order(rows, 0, speaker_run=2)]
    >>> all(spk[i] == spk[i + 1] for i in range(0, 8, 2))  # runs of two
    True
    >>> sorted(segment_order(rows, 0, speaker_run=2)) == list(range(8))
    True
    """
    rng = np.random.default_rng(seed)
    if speaker_run < 1:
        return rng.permutation(len(rows))
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.spk_id, []).append(i)
    runs = []
    for spk in groups:
        mine = rng.permutation(groups[spk])
        runs += [mine[i : i + speaker_run] for i in
                 range(0, len(mine), speaker_run)]  # fmt: skip
    if not runs:
        return np.zeros(0, int)
    return np.concatenate([runs[j] for j in rng.permutation(len(runs))])


def _write_split(
    save_folder: Path, split: str, shard_size: int, seed: int, run: int
) -> dict[str, Any]:
    run = run if split == SPEAKER_SPLIT else 0
    manifest = save_folder / f"{'train' if run else split}.csv"
    folder = shard_folder(save_folder, split)
    options = {
        "version": SHARD_VERSION,
        "shard_size": shard_size,
        "seed": seed,
        "speaker_run": run,
        "manifest": manifest.name,
        "manifest_sha256": _sha256(manifest),
    }
    listing = folder / SHARD_LIST
    if outputs_up_to_date(folder, [listing], options, SHARD_OPTIONS):
        shard_list = read_shard_list(listing)
        logger.info("%s already written, skipping", listing)
        return shard_list.summary()
    rows = read_manifest(manifest, save_folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SHARD_OPTIONS).unlink(missing_ok=True)
    order = segment_order(rows, seed, run)
    parts = np.array_split(order, math.ceil(len(rows) / shard_size))
    shards, rate = [], None
    for i, part in enumerate(parts):
        name = f"shard-{i:06d}.tar"
        with atomic_write(folder / name, "wb") as f:
            writer = webdataset.TarWriter(f, mtime=0.0)
            for index in part:
                writer.write(_sample(int(index), rows[index]))
            writer.close()
        if rate is None:
            rate = soundfile.info(rows[part[0]].wav).samplerate
        speakers = {rows[j].spk_id for j in part}
        shards.append(
            {"name": name, "segments": len(part), "speakers": len(speakers)}
        )
    keep = {s["name"] for s in shards}
    for old in folder.glob("shard-*.tar"):
        if old.name not in keep:
            old.unlink()
    write_json(
        listing,
        {
            "version": SHARD_VERSION,
            "split": split,
            "manifest": manifest.name,
            "sample_rate": rate,
            "segments": len(rows),
            "shards": shards,
            "speakers": _speaker_counts(rows),
        },
    )
    save_options(folder, options, SHARD_OPTIONS)
    logger.info("wrote %d shards of %s into %s", len(shards), split, folder)
    return read_shard_list(listing).summary()


def write_shards(
    save_folder: Pathlike,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    seed: int = 1234,
    splits: Sequence[str] = SHARD_SPLITS,
    speaker_run: int = DEFAULT_SPEAKER_RUN,
) -> dict[str, dict[str, Any]]:
    """Writes the prepared segments of each split as WebDataset shards.

    Reads ``<split>.csv`` of a prepared folder (``data_prep.py``) and
    writes ``shards/<split>/shard-*.tar`` and ``shardlist.json``.  Skips a
    split whose shards were written with the same options from the same
    manifest (``shard_options.json``, the project's skip rule); every file
    is written to a temporary name and renamed, and the options are saved
    last, so an interrupted run is finished by running it again.

    Arguments
    ---------
    save_folder : Pathlike
        The prepared folder (holding ``train.csv``, ``valid.csv``, ...).
    shard_size : int
        Segments per shard, at most (the shards of a split are of equal
        size, give or take one).
    seed : int
        Seed of the order of the segments in the shards.
    splits : sequence of str
        The splits to shard: ``train``, ``valid`` (their manifests) and
        :data:`SPEAKER_SPLIT` (``train.csv`` in runs of one speaker).
    speaker_run : int
        Segments per run of one speaker in :data:`SPEAKER_SPLIT` (at
        least the triplet stage's K).

    Returns
    -------
    dict
        Per split: ``shards``, ``segments``, ``speakers`` (counts) and
        ``shard_list`` (the path).

    Raises
    ------
    ConfigError
        For a ``shard_size`` below 1 or an unknown split.
    MissingFileError, DataError
        When a manifest or a WAV it names is missing or broken.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.dataio import write_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> soundfile.write(d / "a.wav", np.zeros(16000, "int16"), 8000)
    >>> write_manifest(d / "train.csv", [
    ...     SegmentRow(f"a_{k}", 1.0, "{data_root}/a.wav", 8000 * k,
    ...                8000 * (k + 1), "S") for k in range(2)])
    >>> write_shards(d, shard_size=1, splits=["train"])["train"]["shards"]
    2
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    if speaker_run < 1:
        raise ConfigError(f"speaker_run must be >= 1, got {speaker_run}")
    known = [*SHARD_SPLITS, SPEAKER_SPLIT]
    unknown = sorted(set(splits) - set(known))
    if unknown:
        raise ConfigError(f"cannot shard {unknown}: the splits are {known}")
    save_folder = Path(save_folder)
    return {
        s: _write_split(save_folder, s, shard_size, seed, speaker_run)
        for s in splits
    }


@dataclasses.dataclass(frozen=True)
class ShardList:
    """A split's shards (resolved paths and segment counts) and speakers.

    ``speakers`` maps each speaker to its segment count, in the order of
    first appearance in the manifest (the order the label encoder of the
    CSV path uses).
    """

    path: Path
    shards: tuple[Path, ...]
    counts: tuple[int, ...]
    speakers: dict[str, int]
    sample_rate: int

    @property
    def segments(self) -> int:
        """Segments in all the shards."""
        return sum(self.counts)

    def summary(self) -> dict[str, Any]:
        """Counts for reports: shards, segments, speakers, list path."""
        return {
            "shards": len(self.shards),
            "segments": self.segments,
            "speakers": len(self.speakers),
            "shard_list": str(self.path),
        }


def read_shard_list(path: Pathlike) -> ShardList:
    """Reads and checks a ``shardlist.json`` (or the folder holding one).

    Shard names are relative to the list's folder unless absolute, so a
    node can use its own list naming shards on its local disk.

    Raises
    ------
    MissingFileError
        When the list or a shard it names does not exist.
    DataError
        When the list is not a shard list.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> read_shard_list(d)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.MissingFileError: shard list ... not found; ...
    """
    path = Path(path)
    if path.is_dir():
        path = path / SHARD_LIST
    if not path.is_file():
        raise MissingFileError(f"shard list {path} not found; {SHARDS_HINT}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        names = [s["name"] for s in raw["shards"]]
        counts = tuple(int(s["segments"]) for s in raw["shards"])
        speakers = {str(s): int(n) for s, n in raw["speakers"]}
        rate = int(raw["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path} is not a shard list ({exc!r}); {SHARDS_HINT}"
        ) from exc
    if not names:
        raise DataError(f"shard list {path} names no shard; {SHARDS_HINT}")
    shards = tuple(path.parent / n for n in names)
    for shard in shards:
        if not shard.is_file():
            raise MissingFileError(
                f"shard {shard} (listed in {path}) not found; {SHARDS_HINT}"
            )
    return ShardList(path, shards, counts, speakers, rate)


def iter_shard(path: Pathlike) -> Iterator[dict[str, Any]]:
    """The segments of one shard, in shard order.

    Yields dicts with ``id``, ``spk_id``, ``sig`` (float32 samples in
    [-1, 1), as :func:`speechbrain.dataio.dataio.read_audio` reads the
    cached WAV) and ``meta`` (the sample's JSON).

    Raises
    ------
    DataError
        When the shard is not a readable tar of ``.wav`` + ``.json``
        samples.
    """
    current: dict[str, bytes] = {}
    key = None
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                name, _, ext = base.partition(".")
                if name != key and current:
                    yield _decode(current)
                    current = {}
                key = name
                current[ext] = tar.extractfile(member).read()
        if current:
            yield _decode(current)
    except (tarfile.TarError, OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"shard {path} is unreadable ({exc!r}); {SHARDS_HINT}"
        ) from exc


def _decode(sample: dict[str, bytes]) -> dict[str, Any]:
    meta = json.loads(sample["json"])
    sig, _ = soundfile.read(io.BytesIO(sample["wav"]), dtype="float32")
    return {
        "id": meta["ID"],
        "spk_id": meta["spk_id"],
        "sig": torch.from_numpy(sig),
        "meta": meta,
    }


def _crop(
    example: dict[str, Any], samples: int | None, rng: np.random.Generator
) -> dict[str, Any]:
    """A random ``samples``-long crop of a longer segment's signal."""
    sig = example["sig"]
    if samples is not None and len(sig) > samples:
        start = int(rng.integers(0, len(sig) - samples + 1))
        example = {**example, "sig": sig[start : start + samples]}
    return example


def _worker() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class _ShardReader(IterableDataset):
    """What both shard datasets share: the epoch's shards of each rank."""

    def __init__(
        self,
        shard_list: ShardList | Pathlike,
        *,
        sentence_len: float | None,
        seed: int,
        transform: Callable[[dict], dict] | None,
        rank: int | None,
        world_size: int | None,
    ) -> None:
        super().__init__()
        if not isinstance(shard_list, ShardList):
            shard_list = read_shard_list(shard_list)
        self.shard_list = shard_list
        self.rank, self.world_size = dist_info(rank, world_size)
        self.seed = seed
        self.epoch = 0
        self.transform = transform
        self.crop = (
            None
            if sentence_len is None
            else round(sentence_len * shard_list.sample_rate)
        )

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which reseeds the shard order and the buffers."""
        self.epoch = epoch

    def _check_ranks(self) -> None:
        n = len(self.shard_list.shards)
        if n < self.world_size:
            raise ConfigError(
                f"{self.shard_list.path} has {n} shard(s) for "
                f"{self.world_size} ranks: every rank needs its own shards; "
                "write smaller shards (data_prep.py --format shards "
                "--shard_size ...)"
            )

    def _rank_shards(self, rank: int, shuffle: bool) -> list[int]:
        n = len(self.shard_list.shards)
        order = np.arange(n)
        if shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(
                n
            )
        return order[rank :: self.world_size].tolist()

    def _examples(
        self, shards: Sequence[int], rng: np.random.Generator
    ) -> Iterator[dict[str, Any]]:
        for s in shards:
            for example in iter_shard(self.shard_list.shards[s]):
                example = _crop(example, self.crop, rng)
                if self.transform is not None:
                    example = self.transform(example)
                yield example

    def _rng(self, worker: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, self.rank, worker])


def _shuffled(
    examples: Iterator[dict], size: int, rng: np.random.Generator
) -> Iterator[dict]:
    """A shuffle buffer of ``size`` examples (no shuffling when < 2)."""
    if size < 2:
        yield from examples
        return
    buffer: list[dict] = []
    for example in examples:
        if len(buffer) < size:
            buffer.append(example)
            continue
        j = int(rng.integers(len(buffer)))
        yield buffer[j]
        buffer[j] = example
    rng.shuffle(buffer)
    yield from buffer


def _batches(
    examples: Iterator[dict], batch_size: int, keys: Sequence[str]
) -> Iterator[PaddedBatch]:
    batch: list[dict] = []
    for example in examples:
        batch.append({k: example[k] for k in keys})
        if len(batch) == batch_size:
            yield PaddedBatch(batch)
            batch = []
    if batch:
        yield PaddedBatch(batch)


class ShardDataset(_ShardReader):
    """Padded batches of shard segments (the softmax stage's data).

    Training (``shuffle=True``, ``split_by="shard"``): each rank reads its
    own shards of the epoch's shard order, each DataLoader worker its own
    share of them, through a shuffle buffer of ``buffer_size`` segments;
    ``sentence_len`` crops are random.  Every rank yields the same number
    of batches (:meth:`__len__`): a rank with fewer re-reads its first
    shards for the missing ones.  Validation (``shuffle=False``,
    ``split_by="sample"``): every rank reads every shard and keeps every
    ``world_size``-th segment, in shard order; no padding.

    Arguments
    ---------
    shard_list : ShardList or Pathlike
        The shards (``shardlist.json`` or its folder).
    batch_size : int
        Segments per batch.
    sentence_len : float, optional
        Crop length in seconds (``None``: whole segments).
    shuffle : bool
        Shuffle the shard order (per epoch) and the segments (buffer).
    buffer_size : int
        Segments in each worker's shuffle buffer.
    split_by : str
        ``"shard"`` or ``"sample"``: how the ranks share the data.
    keys : sequence of str
        The batch's keys (``id``, ``sig``, ``spk_id`` and what
        ``transform`` adds).
    transform : callable, optional
        Applied to each example dict (e.g. adds ``spk_id_encoded``).
    seed : int
        Seed of the shard order, buffers and crops (with the epoch).
    rank, world_size : int, optional
        Default: torch.distributed's (or 0 and 1).

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.dataio import write_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> soundfile.write(d / "a.wav", np.zeros(40000, "int16"), 8000)
    >>> write_manifest(d / "train.csv", [
    ...     SegmentRow(f"a_{k}", 1.0, "{data_root}/a.wav", 8000 * k,
    ...                8000 * (k + 1), "S") for k in range(5)])
    >>> _ = write_shards(d, shard_size=2, splits=["train"])
    >>> data = ShardDataset(d / "shards/train", 2, sentence_len=0.5)
    >>> batches = list(data)
    >>> len(data), [b.sig.data.shape for b in batches]
    (3, [torch.Size([2, 4000]), torch.Size([2, 4000]), torch.Size([1, 4000])])
    >>> sorted(i for b in batches for i in b.id)
    ['a_0', 'a_1', 'a_2', 'a_3', 'a_4']
    """

    def __init__(
        self,
        shard_list: ShardList | Pathlike,
        batch_size: int,
        *,
        sentence_len: float | None = None,
        shuffle: bool = True,
        buffer_size: int = 1000,
        split_by: str = "shard",
        keys: Sequence[str] = ("id", "sig", "spk_id"),
        transform: Callable[[dict], dict] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(
            shard_list,
            sentence_len=sentence_len,
            seed=seed,
            transform=transform,
            rank=rank,
            world_size=world_size,
        )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if split_by not in ("shard", "sample"):
            raise ConfigError(f"split_by must be shard or sample: {split_by}")
        if split_by == "shard":
            self._check_ranks()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_size = buffer_size if shuffle else 0
        self.split_by = split_by
        self.keys = tuple(keys)
        self.num_workers = 1  # set by make_shard_loader

    def _worker_batches(self, rank: int, worker: int, workers: int) -> int:
        """Batches that ``worker`` of ``rank`` makes from its own shards."""
        counts = self.shard_list.counts
        shards = self._rank_shards(rank, self.shuffle)[worker::workers]
        return math.ceil(sum(counts[s] for s in shards) / self.batch_size)

    def _rank_batches(self, rank: int, workers: int) -> int:
        return sum(
            self._worker_batches(rank, w, workers) for w in range(workers)
        )

    def __len__(self) -> int:
        """Batches of this rank per epoch (with the padding)."""
        if self.split_by == "sample":
            n = len(range(self.rank, self.shard_list.segments, self.world_size))
            return math.ceil(n / self.batch_size)
        return self._epoch_batches(self.num_workers)

    def _epoch_batches(self, workers: int) -> int:
        """Batches of every rank: the most any rank makes."""
        return max(
            self._rank_batches(r, workers) for r in range(self.world_size)
        )

    def __iter__(self) -> Iterator[PaddedBatch]:
        worker, workers = _worker()
        rng = self._rng(worker)
        if self.split_by == "sample":
            examples = self._every_nth(worker, workers, rng)
            yield from _batches(examples, self.batch_size, self.keys)
            return
        shards = self._rank_shards(self.rank, self.shuffle)
        own = shards[worker::workers]
        examples = _shuffled(self._examples(own, rng), self.buffer_size, rng)
        yield from _batches(examples, self.batch_size, self.keys)
        missing = self._epoch_batches(workers) - self._rank_batches(
            self.rank, workers
        )
        if worker == 0 and missing > 0:
            # padding: the same number of steps on every rank
            yield from self._padding(shards, missing, rng)

    def _padding(
        self, shards: list[int], n_batches: int, rng: np.random.Generator
    ) -> Iterator[PaddedBatch]:
        def cycle() -> Iterator[dict]:
            while True:
                yield from self._examples(shards, rng)

        batches = _batches(cycle(), self.batch_size, self.keys)
        for _ in range(n_batches):
            yield next(batches)

    def _every_nth(
        self, worker: int, workers: int, rng: np.random.Generator
    ) -> Iterator[dict]:
        counts = self.shard_list.counts
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for s in range(worker, len(counts), workers):
            for i, example in enumerate(self._examples([s], rng)):
                if (offsets[s] + i) % self.world_size == self.rank:
                    yield example


class SpeakerShardBatches(_ShardReader):
    """P speakers x K segments batches from a speaker buffer of shards.

    The triplet stage's batches: each DataLoader worker streams its
    rank's shards (its share; all of the rank's when there are more
    workers than shards) in a loop into a buffer of ``buffer_size``
    segments grouped by speaker, and emits a batch of ``P`` random
    speakers holding ``K`` segments each in the buffer, ``K`` random
    segments per speaker.  With ``small_speakers="replace"``, a speaker
    with fewer than ``K`` segments in the whole split is completed by
    sampling its buffered segments with replacement; with ``"skip"`` it
    is never drawn.  An epoch is ``num_batches`` batches per rank (default:
    about one pass over the data, as the CSV sampler), the same on every
    rank.

    Arguments
    ---------
    shard_list : ShardList or Pathlike
        The training shards.
    speakers_per_batch, n_per_speaker : int
        P (>= 2) and K (>= 2).
    num_batches : int, optional
        Batches per epoch per rank.
    sentence_len : float, optional
        Random crop length (s).
    buffer_size : int
        Segments held in each worker's speaker buffer (>= 2 P K).
    small_speakers : str
        ``"replace"`` or ``"skip"``.
    seed : int
        Seed (with the epoch, rank and worker).
    rank, world_size : int, optional
        Default: torch.distributed's (or 0 and 1).

    Example
    -------
    >>> import tempfile, pathlib
    >>> from collections import Counter
    >>> from deep_speaker_sb.dataio import write_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> soundfile.write(d / "a.wav", np.zeros(8000, "int16"), 8000)
    >>> write_manifest(d / "train.csv", [
    ...     SegmentRow(f"{s}_{k}", 0.1, "{data_root}/a.wav", 0, 800, s)
    ...     for s in "ABC" for k in range(4)])
    >>> _ = write_shards(d, shard_size=4, splits=["train"])
    >>> data = SpeakerShardBatches(d / "shards/train", 2, 2, num_batches=3,
    ...                            buffer_size=8)
    >>> batches = list(data)
    >>> len(batches), [sorted(Counter(b.spk_id).values()) for b in batches]
    (3, [[2, 2], [2, 2], [2, 2]])
    """

    def __init__(
        self,
        shard_list: ShardList | Pathlike,
        speakers_per_batch: int,
        n_per_speaker: int,
        *,
        num_batches: int | None = None,
        sentence_len: float | None = None,
        buffer_size: int = 2000,
        small_speakers: str = "replace",
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(
            shard_list,
            sentence_len=sentence_len,
            seed=seed,
            transform=None,
            rank=rank,
            world_size=world_size,
        )
        self._check_ranks()
        p, k = speakers_per_batch, n_per_speaker
        if p < 2 or k < 2:
            raise ConfigError(
                f"speakers_per_batch (P) and n_per_speaker (K) must be >= 2 "
                f"for positives and negatives, got P={p}, K={k}"
            )
        if small_speakers not in ("replace", "skip"):
            raise ConfigError(
                "small_speakers must be replace or skip, got "
                f"{small_speakers!r}"
            )
        if buffer_size < 2 * p * k:
            raise ConfigError(
                f"shard_buffer ({buffer_size}) must hold at least 2 P K = "
                f"{2 * p * k} segments"
            )
        counts = self.shard_list.speakers
        usable = [s for s, n in counts.items() if n >= k]
        if small_speakers == "replace":
            usable = list(counts)
        if len(usable) < p:
            raise ConfigError(
                f"a batch needs P={p} distinct speakers but the shards hold "
                f"only {len(usable)} usable speakers; lower speakers_per_batch"
            )
        self.p, self.k = p, k
        self.small = small_speakers
        self.buffer_size = buffer_size
        if num_batches is None:
            per = p * k * self.world_size
            num_batches = max(1, self.shard_list.segments // per)
        if num_batches < 1:
            raise ConfigError(f"num_batches must be >= 1, got {num_batches}")
        self.num_batches = num_batches

    def __len__(self) -> int:
        return self.num_batches

    def _ready(self, buffer: dict[str, list[dict]]) -> list[str]:
        counts = self.shard_list.speakers
        return [
            s
            for s, items in buffer.items()
            if len(items) >= self.k
            or (self.small == "replace" and items and counts[s] < self.k)
        ]

    def __iter__(self) -> Iterator[PaddedBatch]:
        worker, workers = _worker()
        quota = self.num_batches // workers
        quota += worker < self.num_batches % workers
        if quota == 0:
            return
        rng = self._rng(worker)
        shards = self._rank_shards(self.rank, shuffle=True)
        shards = shards[worker::workers] or shards
        limit = sum(self.shard_list.counts[s] for s in shards)
        capacity = min(self.buffer_size, limit)  # distinct segments
        buffer: dict[str, list[dict]] = {}
        ids: set[str] = set()  # in the buffer: a segment once at most
        since_batch = 0
        while True:  # loops over the worker's shards until the quota
            for example in self._examples(shards, rng):
                since_batch += 1
                if example["id"] in ids:
                    continue
                buffer.setdefault(example["spk_id"], []).append(example)
                ids.add(example["id"])
                if len(ids) < capacity:
                    continue
                ready = self._ready(buffer)
                if len(ready) < self.p:
                    ids.discard(self._evict(buffer, rng))
                    if since_batch > 3 * limit:
                        raise DataError(self._stuck_message(shards))
                    continue
                batch, taken = self._take(buffer, ready, rng)
                ids.difference_update(taken)
                since_batch = 0
                yield batch
                quota -= 1
                if quota == 0:
                    return

    def _take(
        self,
        buffer: dict[str, list[dict]],
        ready: list[str],
        rng: np.random.Generator,
    ) -> tuple[PaddedBatch, list[str]]:
        examples, taken = [], []
        for s in rng.choice(ready, self.p, replace=False):
            items = buffer[s]
            if len(items) >= self.k:
                picks = rng.choice(len(items), self.k, replace=False)
                examples.extend(items[i] for i in picks)
                for i in sorted(picks, reverse=True):
                    taken.append(items.pop(i)["id"])
            else:  # a small speaker: with replacement, kept in the buffer
                picks = rng.choice(len(items), self.k, replace=True)
                examples.extend(items[i] for i in picks)
            if not items:
                del buffer[s]
        keys = ("id", "sig", "spk_id")
        return PaddedBatch([{k: e[k] for k in keys} for e in examples]), taken

    def _evict(
        self, buffer: dict[str, list[dict]], rng: np.random.Generator
    ) -> str:
        """Drops the oldest segment of a speaker that cannot fill K yet
        (of any speaker when all can); returns its id."""
        short = [s for s, items in buffer.items() if len(items) < self.k]
        spk = str(rng.choice(short if short else list(buffer)))
        dropped = buffer[spk].pop(0)["id"]
        if not buffer[spk]:
            del buffer[spk]
        return dropped

    def _stuck_message(self, shards: Sequence[int]) -> str:
        return (
            f"rank {self.rank}'s shards ({len(shards)} of "
            f"{self.shard_list.path}) never hold P={self.p} speakers with "
            f"K={self.k} segments in a buffer of {self.buffer_size}; raise "
            "shard_buffer or lower speakers_per_batch"
        )


class ShardLoader(DataLoader):
    """A DataLoader whose workers' user errors stay one-line messages.

    torch re-raises an exception of a worker process with the worker's
    traceback in its message; a :class:`~deep_speaker_sb.errors.UserError`
    (a broken shard, a buffer that never fills) gets back its own message,
    so the command line prints one ``error:`` line.
    """

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except UserError as exc:
                lines = str(exc).rstrip().splitlines()
                if len(lines) < 2 or not lines[0].startswith("Caught "):
                    raise
                prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
                raise type(exc)(lines[-1].removeprefix(prefix)) from None
            yield batch


def make_shard_loader(
    dataset: ShardDataset | SpeakerShardBatches,
    num_workers: int = 0,
    **loader_kwargs: Any,
) -> DataLoader:
    """A DataLoader over a shard dataset's batches (``batch_size=None``).

    Brain.fit uses a DataLoader as it is; set ``brain.train_sampler =
    dataset`` so that it calls ``dataset.set_epoch(epoch)`` every epoch.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.dataio import write_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> soundfile.write(d / "a.wav", np.zeros(24000, "int16"), 8000)
    >>> write_manifest(d / "train.csv", [
    ...     SegmentRow(f"a_{k}", 1.0, "{data_root}/a.wav", 8000 * k,
    ...                8000 * (k + 1), "S") for k in range(3)])
    >>> _ = write_shards(d, shard_size=1, splits=["train"])
    >>> loader = make_shard_loader(ShardDataset(d / "shards/train", 2))
    >>> len(loader), sum(len(b.id) for b in loader)
    (2, 3)
    """
    if isinstance(dataset, ShardDataset):
        dataset.num_workers = max(1, num_workers)
    return ShardLoader(
        dataset, batch_size=None, num_workers=num_workers, **loader_kwargs
    )


def use_shards(hparams: dict[str, Any]) -> bool:
    """Whether the YAML's ``data_format`` is ``shards`` (default ``csv``).

    Example
    -------
    >>> use_shards({}), use_shards({"data_format": "shards"})
    (False, True)
    >>> use_shards({"data_format": "tar"})
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: data_format must be one of ...
    """
    value = hparams.get("data_format", "csv")
    if value not in DATA_FORMATS:
        raise ConfigError(
            f"data_format must be one of {', '.join(DATA_FORMATS)}, "
            f"got {value!r}"
        )
    return value == "shards"


def _shard_list(hparams: dict[str, Any], key: str) -> ShardList:
    shard_list = read_shard_list(hparams[key])
    if shard_list.sample_rate != hparams["sample_rate"]:
        raise ConfigError(
            f"{shard_list.path} holds {shard_list.sample_rate} Hz audio "
            f"but sample_rate is {hparams['sample_rate']}"
        )
    return shard_list


class EncodeSpeaker:
    """Adds ``spk_id_encoded`` to an example (picklable for workers).

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> enc = CategoricalEncoder()
    >>> enc.update_from_iterable(["A", "B"])
    >>> EncodeSpeaker(enc)({"spk_id": "B"})["spk_id_encoded"]
    tensor([1])
    """

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        code = self.encoder.encode_sequence_torch([example["spk_id"]])
        return {**example, "spk_id_encoded": code}


def softmax_shard_data(
    hparams: dict[str, Any],
    label_encoder_for: Callable[[dict[str, Any], list[str]], Any],
) -> tuple[DataLoader, DataLoader, Any]:
    """The softmax stage's training and validation data from shards.

    Training: random ``sentence_len`` crops, each rank its own shards,
    shuffled (``shard_buffer`` segments per worker); validation: the
    whole segments of ``valid_shards``, every ``world_size``-th one per
    rank.

    Arguments
    ---------
    hparams : mapping
        Uses ``train_shards``, ``valid_shards``, ``sample_rate``,
        ``batch_size``, ``sentence_len``, ``shard_buffer``,
        ``num_workers`` and ``seed``.
    label_encoder_for : callable
        ``(hparams, speakers) -> CategoricalEncoder`` (the stage's).

    Returns
    -------
    train_loader, valid_loader : DataLoader
        Batches with ``id``, ``sig``, ``spk_id_encoded``.
    label_encoder : CategoricalEncoder
        What ``label_encoder_for`` returned.
    """
    train_list = _shard_list(hparams, "train_shards")
    valid_list = _shard_list(hparams, "valid_shards")
    check_speaker_sets(set(train_list.speakers), set(valid_list.speakers))
    encoder = label_encoder_for(hparams, list(train_list.speakers))
    common = {
        "keys": ("id", "sig", "spk_id_encoded"),
        "transform": EncodeSpeaker(encoder),
        "seed": hparams["seed"],
    }
    train = ShardDataset(
        train_list,
        hparams["batch_size"],
        sentence_len=hparams["sentence_len"],
        buffer_size=hparams["shard_buffer"],
        **common,
    )
    valid = ShardDataset(
        valid_list,
        hparams["batch_size"],
        shuffle=False,
        split_by="sample",
        **common,
    )
    workers = hparams["num_workers"]
    return (
        make_shard_loader(train, workers),
        make_shard_loader(valid, workers),
        encoder,
    )


def triplet_shard_batches(hparams: dict[str, Any]) -> SpeakerShardBatches:
    """The triplet stage's P x K training batches from ``train_shards``.

    Uses ``train_shards``, ``sample_rate``, ``speakers_per_batch``,
    ``n_per_speaker``, ``batches_per_epoch``, ``sentence_len``,
    ``shard_buffer``, ``small_speakers`` and ``seed``.
    """
    return SpeakerShardBatches(
        _shard_list(hparams, "train_shards"),
        hparams["speakers_per_batch"],
        hparams["n_per_speaker"],
        num_batches=hparams["batches_per_epoch"],
        sentence_len=hparams["sentence_len"],
        buffer_size=hparams["shard_buffer"],
        small_speakers=hparams["small_speakers"],
        seed=hparams["seed"],
    )
