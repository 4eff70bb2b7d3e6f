#!/usr/bin/env python3
"""Calibration of an export's scores on the benchmark corpus (issue #21).

Runs ``verify.py`` as a user would, on a trained export (by default the
``augment`` run of ``bench/accuracy.py``), and prints one JSON object:

1. ``test``: every test trial of ``<prep_folder>/trials.txt`` scored with
   the calibration the export fitted at export (on ``cal_trials.txt``,
   the speakers ``data_prep.py --cal_speakers`` held out of training, or
   on its validation trials for a folder prepared without them): actual
   ``cllr`` beside ``min_cllr`` (their difference is the calibration
   loss) and, for each stored operating point, the false-accept and
   false-reject rates measured on these held-out trials beside the ones
   where it was fitted.
2. ``cross_before`` / ``cross_after``: the trials between two
   cross-family test voices (``voices.json``'s ``"test": "cross"``: the
   shifted set), less ``--n_calibrate`` of them drawn at random, scored
   with the export's calibration, then again after ``verify.py
   --calibrate`` on the drawn trials (on a copy of the export).

Usage::

    python bench/calibration.py --prep_folder bench_data/tts8k \\
        --voices bench_data/tts_corpus/voices.json \\
        --model bench_data/accuracy/augment/seed1/triplet/pretrained \\
        --out bench_data/calibration
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deep_speaker_sb.dataio import read_manifest, utterances  # noqa: E402
from deep_speaker_sb.scoring import read_trials  # noqa: E402


def cross_trials(
    trials: list[tuple[int, str, str]], utt2test: dict[str, str]
) -> list[tuple[int, str, str]]:
    """The trials whose two utterances are of cross-family test voices.

    Example
    -------
    >>> cross_trials([(1, "a", "b"), (0, "a", "c")],
    ...              {"a": "cross", "b": "cross", "c": "same"})
    [(1, 'a', 'b')]
    """
    return [
        t for t in trials if utt2test.get(t[1]) == "cross" == utt2test.get(t[2])
    ]


def split_trials(
    trials: list[tuple[int, str, str]], n: int, seed: int
) -> tuple[list, list]:
    """``n`` trials drawn at random (half target where possible), and the
    rest in their order.

    Example
    -------
    >>> t = [(i % 2, f"a{i}", f"b{i}") for i in range(10)]
    >>> drawn, rest = split_trials(t, 4, 0)
    >>> len(drawn), len(rest), sum(x[0] for x in drawn)
    (4, 6, 2)
    >>> sorted(drawn + rest) == sorted(t)
    True
    """
    rng = random.Random(seed)
    drawn = []
    for label in (1, 0):
        pool = [t for t in trials if t[0] == label]
        drawn += rng.sample(pool, min(len(pool), n // 2 + (n % 2) * label))
    taken = set(drawn)
    return drawn, [t for t in trials if t not in taken]


def _write_trials(path: Path, trials: list[tuple[int, str, str]]) -> Path:
    path.write_text("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))
    return path


def _verify(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, str(ROOT / "verify.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"verify.py {' '.join(args)} failed:\n{run.stderr}")
    return run.stdout


def _summary(report: dict) -> dict:
    """The calibration figures of a ``report.json``."""
    points = {
        name: {
            "threshold": round(p["threshold"], 4),
            "far": round(p["false_accept_rate"], 4),
            "frr": round(p["false_reject_rate"], 4),
            "fitted_far": p["fitted"]["far"],
            "fitted_frr": p["fitted"]["frr"],
            "fitted_trials": p["fitted"]["trials"],
        }
        for name, p in report.get("operating_points", {}).items()
    }
    return {
        "n_trials": report["n_trials"],
        "eer": round(report["eer"], 4),
        "cllr": None if report["cllr"] is None else round(report["cllr"], 4),
        "min_cllr": round(report["min_cllr"], 4),
        "operating_points": points,
    }


def _score(model: Path, csv: Path, trials: Path, out: Path) -> dict:
    _verify(
        "--model", str(model), "--csv", str(csv),
        "--trials", str(trials), "--out", str(out),
    )  # fmt: skip
    return _summary(json.loads((out / "report.json").read_text()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prep_folder", type=Path, required=True)
    p.add_argument("--voices", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n_calibrate", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.prep_folder / "test.csv"
    voices = json.loads(args.voices.read_text())
    utt2test = {
        u.utt_id: voices.get(u.spk_id, {}).get("test")
        for u in utterances(read_manifest(csv)).values()
    }
    trials_txt = args.prep_folder / "trials.txt"
    out: dict = {"model": str(args.model)}
    out["test"] = _score(args.model, csv, trials_txt, args.out / "test")
    cross = cross_trials(read_trials(trials_txt), utt2test)
    drawn, rest = split_trials(cross, args.n_calibrate, args.seed)
    cal = _write_trials(args.out / "cross_calibrate.txt", drawn)
    held = _write_trials(args.out / "cross_heldout.txt", rest)
    out["cross_before"] = _score(args.model, csv, held, args.out / "before")
    copy = args.out / "model_recalibrated"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(args.model, copy)
    printed = _verify(
        "--model", str(copy), "--csv", str(csv), "--calibrate", str(cal)
    )  # fmt: skip
    out["calibrated_on"] = {"trials": len(drawn), "verify_py": printed}
    out["cross_after"] = _score(copy, csv, held, args.out / "after")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
