"""Verification trial lists: balanced same/different-speaker pairs.

:func:`make_trials` is shared by the data preparation (``trials.txt`` over
the test utterances) and by the triplet stage (validation trials over the
utterances of ``valid.csv``), so both use the same rules:

- as many target (same speaker) as non-target trials;
- every speaker appears in the list (in a target trial when it has two
  utterances or more, and in a non-target trial);
- a target trial pairs two *different* utterances;
- no pair appears twice, in either order;
- the list depends only on ``utt2spk``, ``num_trials`` and ``seed``.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.errors import ConfigError

logger = get_logger(__name__)

Trial = tuple[int, str, str]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _share(total: int, caps: list[int]) -> list[int]:
    """Splits ``total`` as evenly as the per-item ``caps`` allow."""
    quota = [0] * len(caps)
    left = min(total, sum(caps))
    open_items = [i for i, c in enumerate(caps) if c > 0]
    while left > 0 and open_items:
        each = max(1, left // len(open_items))
        still_open = []
        for i in open_items:
            if left == 0:
                still_open.append(i)
                continue
            add = min(each, caps[i] - quota[i], left)
            quota[i] += add
            left -= add
            if quota[i] < caps[i]:
                still_open.append(i)
        open_items = still_open
    return quota


def _distinct_pairs(
    candidates_count: int, want: int, draw, enumerate_all, rng: random.Random
) -> list[tuple[str, str]]:
    """``want`` distinct unordered pairs, by rejection or by enumeration."""
    if want <= 0:
        return []
    if 2 * want >= candidates_count:
        pool = enumerate_all()
        return rng.sample(pool, want)
    seen: set[tuple[str, str]] = set()
    out = []
    while len(out) < want:
        p = draw()
        key = _pair(*p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def make_trials(
    utt2spk: dict[str, str], num_trials: int, seed: int
) -> list[Trial]:
    """Draws a balanced list of verification trials.

    Arguments
    ---------
    utt2spk : dict
        Utterance id -> speaker id.
    num_trials : int
        Wanted number of trials; half are target trials, half non-target.
        When fewer distinct pairs exist, all the balanced pairs possible are
        returned (``2 * min(#target pairs, #non-target pairs)``).
    seed : int
        Seed of the draw; the same inputs give the same list.

    Returns
    -------
    list of (label, enrol_utt, test_utt)
        ``label`` is 1 for a same-speaker pair, 0 otherwise.

    Example
    -------
    >>> utt2spk = {f"S{s}_U{u}": f"S{s}" for s in range(3) for u in range(4)}
    >>> trials = make_trials(utt2spk, num_trials=10, seed=0)
    >>> len(trials), sum(label for label, _, _ in trials)
    (10, 5)
    >>> all((utt2spk[a] == utt2spk[b]) == bool(t) for t, a, b in trials)
    True
    >>> all(a != b for _, a, b in trials)
    True
    >>> trials == make_trials(utt2spk, num_trials=10, seed=0)
    True
    >>> len(make_trials(utt2spk, num_trials=10**6, seed=0))  # all possible
    36
    """
    if num_trials < 0:
        raise ConfigError(f"num_trials must be >= 0, got {num_trials}")
    rng = random.Random(seed)
    spk2utts: dict[str, list[str]] = defaultdict(list)
    for utt in sorted(utt2spk):
        spk2utts[utt2spk[utt]].append(utt)
    speakers = sorted(spk2utts)
    sizes = [len(spk2utts[s]) for s in speakers]
    n_utts = sum(sizes)
    target_caps = [n * (n - 1) // 2 for n in sizes]
    n_target_possible = sum(target_caps)
    n_nontarget_possible = (n_utts * n_utts - sum(n * n for n in sizes)) // 2
    n_each = min(num_trials // 2, n_target_possible, n_nontarget_possible)
    if n_each < num_trials // 2:
        logger.info(
            "only %d balanced trial pairs possible (asked %d trials)",
            2 * n_each,
            num_trials,
        )
    if n_each == 0:
        return []

    # Target trials: spread over the speakers as evenly as possible.
    trials: list[Trial] = []
    order = list(range(len(speakers)))
    rng.shuffle(order)
    quota = _share(n_each, [target_caps[i] for i in order])
    for i, want in zip(order, quota, strict=True):
        utts = spk2utts[speakers[i]]
        pairs = _distinct_pairs(
            target_caps[i],
            want,
            lambda u=utts: tuple(rng.sample(u, 2)),
            lambda u=utts: list(itertools.combinations(u, 2)),
            rng,
        )
        trials.extend((1, a, b) for a, b in pairs)

    # Non-target trials: the enrolment speaker cycles through all speakers
    # (in a shuffled order) so that every speaker is covered.
    cycle = speakers[:]
    rng.shuffle(cycle)
    counter = itertools.count()

    def draw_nontarget() -> tuple[str, str]:
        spk = cycle[next(counter) % len(cycle)]
        other = rng.choice(speakers)
        while other == spk:
            other = rng.choice(speakers)
        return rng.choice(spk2utts[spk]), rng.choice(spk2utts[other])

    def all_nontarget() -> list[tuple[str, str]]:
        return [
            (a, b)
            for s, t in itertools.combinations(speakers, 2)
            for a in spk2utts[s]
            for b in spk2utts[t]
        ]

    pairs = _distinct_pairs(
        n_nontarget_possible, n_each, draw_nontarget, all_nontarget, rng
    )
    trials.extend((0, a, b) for a, b in pairs)
    rng.shuffle(trials)
    covered = {utt2spk[u] for _, a, b in trials for u in (a, b)}
    if len(covered) < len(speakers):
        logger.warning(
            "%d trials cover only %d of %d speakers; ask for more trials",
            len(trials),
            len(covered),
            len(speakers),
        )
    return trials
