"""verify.py: SAN/SAP arithmetic, trials scoring, identification, errors.

The model is a narrow untrained export (or a fake encoder with known
outputs); the data is the shared tiny prepared corpus.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.processing.features import InputNormalization

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.features import Features
from deep_speaker_sb.lobes.rescnn import ResCNN

ROOT = Path(__file__).resolve().parents[1]
VERIFY = ROOT / "verify.py"


def _load_verify():
    spec = importlib.util.spec_from_file_location("verify_script", VERIFY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def verify_mod():
    return _load_verify()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("triplet") / "1" / "pretrained"
    return export_pretrained(
        folder,
        compute_features=Features(n_mels=32),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=ResCNN(
            n_mels=32, channels=(4, 8), emb_dim=16, blocks_per_stage=1
        ),
        threshold=0.8,
        card={"data": "tiny", "epochs": 0},
    )


# ------------------------------------------------ SAN / SAP arithmetic


class FakeModel:
    """Maps each file to a fixed vector; records what it embeds."""

    threshold = 0.5
    folder = Path("fake")

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode_files(self, paths, batch_size=32):
        self.calls.append([Path(p).stem for p in paths])
        return torch.tensor([self.vectors[Path(p).stem] for p in paths])


@pytest.fixture
def fake_csv(tmp_path: Path) -> Path:
    rows = ["ID,duration,wav,start,stop,spk_id,gender,words"]
    for spk, utts in (("A", 3), ("B", 2), ("C", 1)):
        for u in range(utts):
            wav = f"{{data_root}}/wavs/test/{spk}/{spk}_{u}.wav"
            for k in range(2):  # two segments per utterance
                rows.append(f"{spk}_{u}_{k},3.0,{wav},0,1,{spk},m,x")
    path = tmp_path / "test.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


VECTORS = {
    "A_0": [1.0, 0.0],
    "A_1": [0.0, 1.0],
    "A_2": [1.0, 1.0],
    "B_0": [-1.0, 0.0],
    "B_1": [0.0, 2.0],
    "C_0": [1.0, 0.0],
}


def _numbers(line: str) -> list[float]:
    return [float(w) for w in line.split() if w.lstrip("-")[:1].isdigit()]


def test_san_and_sap_arithmetic(verify_mod, fake_csv, monkeypatch, capsys):
    fake = FakeModel(VECTORS)
    monkeypatch.setattr(verify_mod, "load_model", lambda args: fake)

    assert verify_mod.main(["--spk", "A,B", "--csv", str(fake_csv)]) == 0
    out = capsys.readouterr().out
    assert fake.calls == [["A_0", "A_1", "A_2", "B_0", "B_1"]]  # once each
    san = torch.tensor([-1.0, 0.0, 0.0, 1.0, -(2**-0.5), 2**-0.5]).double()
    sim_line = next(x for x in out.splitlines() if "similarity  " in x)
    dist_line = next(x for x in out.splitlines() if "distance" in x)
    want = [san.mean(), san.std(), san.min(), san.max()]
    assert _numbers(sim_line) == pytest.approx(
        [float(w) for w in want], abs=1e-4
    )
    dist = 1 - san
    want = [dist.mean(), dist.std(), dist.min(), dist.max()]
    assert _numbers(dist_line.split(":", 1)[1]) == pytest.approx(
        [float(w) for w in want], abs=1e-4
    )
    assert "SAN" in out and "over 6 pairs" in out
    assert "2/6 pairs" in out  # 1.0 and 0.707 exceed 0.5

    fake.calls.clear()
    assert verify_mod.main(["--spk", "A,A", "--csv", str(fake_csv)]) == 0
    out = capsys.readouterr().out
    assert fake.calls == [["A_0", "A_1", "A_2"]]
    sap = torch.tensor([0.0, 2**-0.5, 2**-0.5]).double()
    sim_line = next(x for x in out.splitlines() if "similarity  " in x)
    want = [sap.mean(), sap.std(), sap.min(), sap.max()]
    assert _numbers(sim_line) == pytest.approx(
        [float(w) for w in want], abs=1e-4
    )
    assert "SAP" in out and "over 3 pairs" in out


# ------------------------------------------------------ end to end


def test_trials_run_writes_report(tiny_prepared, model_dir, tmp_path):
    out = tmp_path / "verify"
    proc = subprocess.run(
        [
            sys.executable,
            str(VERIFY),
            "--model",
            str(model_dir),
            "--csv",
            str(tiny_prepared / "test.csv"),
            "--trials",
            str(tiny_prepared / "trials.txt"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "EER" in proc.stdout and "minDCF" in proc.stdout
    for name in ("scores.txt", "report.json", "score_hist.png", "det.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    n_trials = len((tiny_prepared / "trials.txt").read_text().split("\n")) - 1
    assert report["n_trials"] == n_trials
    assert 0.0 <= report["eer"] <= 1.0
    assert {"min_dcf_0.01", "min_dcf_0.05", "threshold"} <= set(report)
    lines = (out / "scores.txt").read_text().splitlines()
    assert len(lines) == n_trials and len(lines[0].split()) == 4


def test_snorm_spk_and_identify(
    verify_mod, tiny_prepared, model_dir, tmp_path, capsys
):
    csv = str(tiny_prepared / "test.csv")
    common = ["--model", str(model_dir), "--csv", csv, "--device", "cpu"]
    out = tmp_path / "snorm"
    args = ["--snorm", "--cohort_size", "5", "--snorm_top", "3"]
    assert verify_mod.main(common + args + ["--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["score"] == "s-norm" and report["snorm"]["cohort_size"] == 5
    assert "raw" in report and (out / "det.png").is_file()
    capsys.readouterr()

    spk = "VIVOSDEV01"
    by_results = ["--results", str(model_dir.parent.parent), "--csv", csv]
    assert verify_mod.main(by_results + ["--spk", f"{spk},VIVOSDEV02"]) == 0
    assert "cosine distance (1 - sim)" in capsys.readouterr().out

    # identify one of the test files against the test speakers (the model
    # is untrained, so only the output's shape is checked)
    wav = next((tiny_prepared / "wavs" / "test" / spk).glob("*.wav"))
    for enrol in (csv, str(tiny_prepared / "wavs" / "test")):
        code = verify_mod.main(common + ["--wav", str(wav), "--enrol", enrol])
        assert code == 0
        out = capsys.readouterr().out
        assert " 3. " in out and "speaker: " in out


# ------------------------------------------------------- bad input


def test_bad_inputs_give_one_error_line(
    verify_mod, tiny_prepared, model_dir, fake_csv, tmp_path, capsys
):
    csv = str(tiny_prepared / "test.csv")
    model = ["--model", str(model_dir), "--device", "cpu"]
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for f in model_dir.iterdir():
        if f.name != "embedding_model.ckpt":
            (incomplete / f.name).write_bytes(f.read_bytes())
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    empty = tmp_path / "empty_trials.txt"
    empty.write_text("\n")
    sf.write(tmp_path / "ok.wav", np.zeros(800, "float32"), 8000)
    cases = {
        "unknown speaker": (
            model + ["--csv", csv, "--spk", "VIVOSDEV01,NOPE"],
            ["NOPE", "VIVOSDEV01"],
        ),
        "SAP with one utterance": (
            model + ["--csv", str(fake_csv), "--spk", "C,C"],
            ["only 1 utterance"],
        ),
        "missing model": (
            ["--model", str(tmp_path / "nope"), "--csv", csv],
            ["not found", "train_triplet.py"],
        ),
        "incomplete model": (
            ["--model", str(incomplete), "--csv", csv],
            ["embedding_model.ckpt", "train_triplet.py"],
        ),
        "unreadable wav": (
            model + ["--wav", str(bad_wav), "--enrol", csv],
            ["cannot read audio", "bad.wav"],
        ),
        "empty trials": (
            model + ["--csv", csv, "--trials", str(empty)],
            ["no trial"],
        ),
    }
    # Every case in-process through the scripts' error handler ...
    for name, (argv, words) in cases.items():
        code = run_cli(lambda argv=argv: verify_mod.main(argv))
        err = capsys.readouterr().err
        errors = [x for x in err.splitlines() if x.startswith("error: ")]
        assert code != 0, name
        assert "Traceback" not in err, (name, err)
        assert len(errors) == 1, (name, err)
        for word in words:
            assert word in errors[0], (name, errors[0])

    # ... and two of them as real command lines (run side by side).
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(VERIFY), *cases[name][0]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for name in ("incomplete model", "unreadable wav")
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, (name, err)
        assert "Traceback" not in err, (name, err)
        assert err.strip().splitlines()[-1].startswith("error: "), err
        assert sum(x.startswith("error: ") for x in err.splitlines()) == 1
