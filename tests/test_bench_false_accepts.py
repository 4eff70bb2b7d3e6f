"""bench/false_accepts.py: the false accepts at a FAR threshold, broken
down by the voices' families (issue #18's minDCF analysis)."""

from __future__ import annotations

import doctest
import json
import random

import torch

from tests.conftest import load_script, run_in_process, run_script

bench = load_script("bench/false_accepts.py")


def test_doctests():
    result = doctest.testmod(bench)
    assert result.attempted >= 3 and result.failed == 0


def _near_twins(n_per_pair: int = 40, seed: int = 0):
    """Trials of 6 voices, two families; the two ``x`` voices are near
    twins (their impostor trials score like target trials)."""
    rng = random.Random(seed)
    spk2family = {"x1": "x", "x2": "x", "y1": "y", "y2": "y", "y3": "y",
                  "y4": "y"}  # fmt: skip
    voices = sorted(spk2family)
    trials, scores, utt2spk = [], [], {}
    for i, a in enumerate(voices):
        for b in voices[i:]:
            twins = {a, b} == {"x1", "x2"}
            for k in range(n_per_pair):
                ua, ub = f"{a}_{k}", f"{b}_{k + 1}"
                utt2spk[ua], utt2spk[ub] = a, b
                same = a == b
                mean = 0.8 if same or twins else 0.2
                trials.append((int(same), ua, ub))
                scores.append(rng.gauss(mean, 0.1))
    return trials, torch.tensor(scores), utt2spk, spk2family


def test_near_twins_hold_the_false_accepts():
    trials, scores, utt2spk, spk2family = _near_twins()
    out = bench.false_accept_breakdown(
        trials, scores, utt2spk, spk2family, far=0.05
    )
    n_imp = sum(1 for t in trials if t[0] == 0)
    assert out["impostor_trials"] == n_imp
    assert out["far"] <= 0.05
    first = out["families"][0]
    assert first["pair"] == "x+x"
    # 1 of the 15 impostor voice pairs, nearly every false accept
    assert first["share_of_impostor_trials"] == round(40 / n_imp, 4)
    assert first["share_of_false_accepts"] > 0.9
    assert out["voice_pairs"][0]["pair"] == "x1+x2"
    # without the twins, the low-false-accept end is easy
    assert out["min_dcf_0.01"] > 0.5
    assert out["min_dcf_0.01_without"] < 0.1
    assert out["without"] == "x+x"


def test_cli_prints_rows_and_table(tmp_path):
    trials, scores, utt2spk, spk2family = _near_twins(n_per_pair=10)
    scores_file = tmp_path / "scores.txt"
    scores_file.write_text(
        "".join(
            f"{a} {b} {label} {s:.6f}\n"
            for (label, a, b), s in zip(trials, scores.tolist(), strict=True)
        )
    )
    prep = tmp_path / "prep"
    prep.mkdir()
    rows = ["ID,duration,wav,start,stop,spk_id"]
    for utt, spk in sorted(utt2spk.items()):
        (prep / f"{utt}.wav").write_bytes(b"")
        rows.append(f"{utt}_0,1.0,{{data_root}}/{utt}.wav,0,8000,{spk}")
    (prep / "test.csv").write_text("\n".join(rows) + "\n")
    voices = tmp_path / "voices.json"
    voices.write_text(
        json.dumps({s: {"family": f} for s, f in spk2family.items()})
    )
    args = ["--prep_folder", prep, "--voices", voices]
    proc = run_script(
        "bench/false_accepts.py", *args, "--scores", f"m={scores_file}"
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.splitlines()[0])
    assert row["model"] == "m" and row["families"][0]["pair"] == "x+x"
    assert "| m |" in proc.stdout
    code, err = run_in_process(
        "bench/false_accepts.py",
        [*map(str, args), "--scores", str(scores_file)],
    )
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: --scores wants NAME=FILE, got '{scores_file}'"
    ]
