"""bench/calibration.py's pure parts: the cross-family trials and the
drawn calibration trials (the bench itself runs verify.py on a trained
export, by hand)."""

from __future__ import annotations

import doctest

from tests.conftest import load_script

bench = load_script("bench/calibration.py")


def test_doctests():
    result = doctest.testmod(bench)
    assert result.attempted >= 4 and result.failed == 0


def test_drawn_trials_are_balanced_disjoint_and_reproducible():
    trials = [(int(i % 3 == 0), f"e{i}", f"t{i}") for i in range(300)]
    drawn, rest = bench.split_trials(trials, 200, seed=5)
    assert len(drawn) == 200 and sum(t[0] for t in drawn) == 100
    assert not set(drawn) & set(rest) and len(drawn) + len(rest) == 300
    assert bench.split_trials(trials, 200, seed=5)[0] == drawn
    assert bench.split_trials(trials, 200, seed=6)[0] != drawn


def test_cross_trials_need_both_sides_cross():
    utt2test = {"a": "cross", "b": "cross", "c": "same", "d": None}
    trials = [(1, "a", "b"), (0, "a", "c"), (0, "d", "b"), (0, "b", "a")]
    assert bench.cross_trials(trials, utt2test) == [trials[0], trials[3]]
