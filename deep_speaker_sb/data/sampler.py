"""P speakers x K segments batch sampler for the triplet stage.

Triplet mining needs, for every anchor in a batch, at least one positive
(another segment of its speaker) and one negative (a segment of another
speaker).  :class:`SpeakerBatchSampler` guarantees it: each batch holds
``P`` distinct speakers with ``K >= 2`` segments each (``P >= 2``).

Segments are drawn per speaker from a shuffled pool that is refilled when
it runs low, so an epoch goes through a speaker's segments before repeating
one.  Speakers with fewer than ``K`` segments are either completed by
sampling their segments with replacement (``small_speakers="replace"``,
the default; the same segment may then appear twice in a batch) or left out
(``small_speakers="skip"``).

Under DDP every rank builds the same list of ``world_size * num_batches``
batches for the epoch (same seed, same epoch) and keeps every
``world_size``-th one starting at its rank, so ranks see different batches.
SpeechBrain's ``Brain.make_dataloader`` would wrap a ``batch_sampler`` in a
``DistributedSamplerWrapper``; build the DataLoader yourself
(``speechbrain.dataio.dataloader.make_dataloader(dataset,
batch_sampler=sampler)``) and hand it to ``Brain.fit`` instead, calling
:meth:`SpeakerBatchSampler.set_epoch` at the start of every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from speechbrain.utils.logger import get_logger
from torch.utils.data import Sampler

from deep_speaker_sb.errors import ConfigError

logger = get_logger(__name__)

SMALL_SPEAKER_POLICIES = ("replace", "skip")


def dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank and world size: the given ones, else torch.distributed's.

    Shared by the samplers of the triplet stage (this module's and
    :mod:`deep_speaker_sb.data.shards`'s).

    Arguments
    ---------
    rank, world_size : int, optional
        ``None``: torch.distributed's (``0`` and ``1`` when it is not
        initialized).

    Returns
    -------
    (int, int)
        The rank and the world size.

    Example
    -------
    >>> dist_info(None, None), dist_info(1, 2)
    ((0, 1), (1, 2))
    >>> dist_info(2, 2)
    Traceback (most recent call last):
    ...
    ValueError: invalid rank 2 for world size 2
    """
    dist = torch.distributed
    initialized = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world size {world_size}")
    return rank, world_size


class SpeakerBatchSampler(Sampler[list[int]]):
    """Yields batches of ``speakers_per_batch`` (P) x ``n_per_speaker`` (K)
    indices.

    Arguments
    ---------
    labels : sequence of str or int
        The speaker of every item of the dataset, in dataset order.
    speakers_per_batch : int
        P, distinct speakers per batch (>= 2).
    n_per_speaker : int
        K, segments per speaker in a batch (>= 2).
    num_batches : int, optional
        Batches per epoch *per rank*; default: about one pass over the
        data, ``len(labels) // (P * K * world_size)`` (at least 1).
    seed : int
        Base seed; the batches of an epoch depend only on seed and epoch.
    small_speakers : str
        ``"replace"``: speakers with fewer than K segments are sampled with
        replacement; ``"skip"``: they are never drawn.
    rank : int, optional
        This process's rank (default: torch.distributed's, or 0).
    world_size : int, optional
        Number of processes (default: torch.distributed's, or 1).

    Example
    -------
    >>> labels = ["a", "a", "a", "b", "b", "c", "c", "c"]
    >>> sampler = SpeakerBatchSampler(labels, 2, 2, num_batches=3, seed=1)
    >>> batches = list(sampler)
    >>> len(batches), [len(b) for b in batches]
    (3, [4, 4, 4])
    >>> all(
    ...     sorted(map(labels.__getitem__, b)).count(labels[b[0]]) == 2
    ...     for b in batches
    ... )
    True
    >>> sampler.set_epoch(1)
    >>> list(sampler) != batches
    True
    """

    def __init__(
        self,
        labels: Sequence[str | int],
        speakers_per_batch: int,
        n_per_speaker: int,
        num_batches: int | None = None,
        seed: int = 0,
        small_speakers: str = "replace",
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if speakers_per_batch < 2:
            raise ConfigError(
                f"speakers_per_batch (P) must be >= 2 to have negatives, "
                f"got {speakers_per_batch}"
            )
        if n_per_speaker < 2:
            raise ConfigError(
                f"n_per_speaker (K) must be >= 2 to have positives, "
                f"got {n_per_speaker}"
            )
        if small_speakers not in SMALL_SPEAKER_POLICIES:
            raise ConfigError(
                f"small_speakers must be one of {SMALL_SPEAKER_POLICIES}, "
                f"got {small_speakers!r}"
            )
        self.rank, self.world_size = dist_info(rank, world_size)
        self.speakers_per_batch = speakers_per_batch
        self.n_per_speaker = n_per_speaker
        self.seed = seed
        self.small_speakers = small_speakers
        self.epoch = 0

        groups: dict[str | int, list[int]] = {}
        for index, label in enumerate(labels):
            groups.setdefault(label, []).append(index)
        small = sorted(
            str(s) for s, idx in groups.items() if len(idx) < n_per_speaker
        )
        if small:
            what = "sampled with replacement"
            if small_speakers == "skip":
                what = "skipped"
            logger.info(
                "%d speaker(s) have fewer than K=%d segments and are %s: %s",
                len(small),
                n_per_speaker,
                what,
                ", ".join(small[:10]) + (" ..." if len(small) > 10 else ""),
            )
        self._groups = [
            np.asarray(idx)
            for _, idx in sorted(groups.items(), key=lambda kv: str(kv[0]))
            if small_speakers == "replace" or len(idx) >= n_per_speaker
        ]
        if len(self._groups) < speakers_per_batch:
            which = "speakers"
            if small_speakers == "skip":
                which = f"speakers with at least K={n_per_speaker} segments"
            raise ConfigError(
                f"a batch needs P={speakers_per_batch} distinct speakers but "
                f"the data have only {len(self._groups)} {which}; lower "
                "speakers_per_batch"
            )
        if num_batches is None:
            per_batch = speakers_per_batch * n_per_speaker * self.world_size
            num_batches = max(1, len(labels) // per_batch)
        if num_batches < 1:
            raise ConfigError(f"num_batches must be >= 1, got {num_batches}")
        self.num_batches = num_batches

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which reseeds the batches of the next pass."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        pools = [rng.permutation(g).tolist() for g in self._groups]
        n_groups = len(self._groups)
        total = self.num_batches * self.world_size
        for b in range(total):
            speakers = rng.choice(
                n_groups, self.speakers_per_batch, replace=False
            )
            batch: list[int] = []
            for s in speakers:
                batch.extend(self._draw(rng, pools, int(s)))
            # Every rank draws all batches (same rng) and keeps its share.
            if b % self.world_size == self.rank:
                yield batch

    def _draw(
        self, rng: np.random.Generator, pools: list[list[int]], s: int
    ) -> list[int]:
        """K segments of speaker ``s`` from its shuffled pool."""
        group = self._groups[s]
        k = self.n_per_speaker
        if len(group) < k:
            return rng.choice(group, k, replace=True).tolist()
        pool = pools[s]
        if len(pool) < k:
            # Refill, keeping the leftovers first and avoiding duplicates.
            fresh = rng.permutation(group).tolist()
            pool.extend(i for i in fresh if i not in pool)
        out, pools[s] = pool[:k], pool[k:]
        return out
