"""verify.py and the evaluations it calls: SAN/SAP, trials, identification.

The model is a fake encoder with known embeddings (exact expected values)
or a narrow untrained export (end to end, checked against values computed
independently from the files it writes); the data is the shared tiny
prepared corpus.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.metric_stats import EER

from deep_speaker_sb import evaluation, scoring
from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.dataio import Utterance
from deep_speaker_sb.embedding import SpeechEmbeddings
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.features import Features
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import load_script, run_script

CPU_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def verify_mod():
    return load_script("verify.py")


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


class FakeModel:
    """Maps each file (by stem) to a fixed vector; records what it embeds."""

    folder = Path("fake")

    def __init__(self, vectors: dict[str, list[float]], threshold=0.5):
        self.vectors = vectors
        self.threshold = threshold
        self.calls: list[list[str]] = []

    def encode_files(self, paths, batch_size=32):
        self.calls.append([Path(p).stem for p in paths])
        return torch.tensor([self.vectors[Path(p).stem] for p in paths])

    def encode_speech_files(self, paths, batch_size=32):
        """Its files are all speech (tests/test_speech.py checks the
        check on real audio)."""
        return SpeechEmbeddings(self.encode_files(paths, batch_size), {})


def _write_manifest(path: Path, spk_utts: dict[str, list[str]]) -> Path:
    """A manifest with two segments per utterance; the WAVs are created
    empty (the fake model never reads them)."""
    rows = ["ID,duration,wav,start,stop,spk_id,gender,words"]
    for spk, utts in spk_utts.items():
        for utt in utts:
            wav = path.parent / "wavs" / spk / f"{utt}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(b"")
            for k in range(2):
                rows.append(
                    f"{utt}_{k},3.0,{{data_root}}/wavs/{spk}/{utt}.wav,"
                    f"{k},{k + 1},{spk},m,x"
                )
    path.write_text("\n".join(rows) + "\n")
    return path


def _numbers(line: str) -> list[float]:
    return [float(w) for w in line.split() if w.lstrip("-")[:1].isdigit()]


# ------------------------------------------------ SAN / SAP arithmetic

VECTORS = {
    "A_0": [1.0, 0.0],
    "A_1": [0.0, 1.0],
    "A_2": [1.0, 1.0],
    "B_0": [-1.0, 0.0],
    "B_1": [0.0, 2.0],
    "C_0": [1.0, 0.0],
}


@pytest.fixture
def fake_csv(tmp_path: Path) -> Path:
    return _write_manifest(
        tmp_path / "test.csv",
        {"A": ["A_0", "A_1", "A_2"], "B": ["B_0", "B_1"], "C": ["C_0"]},
    )


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
    assert "speaker A A: 3 utterances; speaker B B: 2 utterances" in out
    assert "SAN (anchor-negative, A x B) over 6 pairs:" in out
    # 1.0 and 0.707 exceed 0.5; the mean (0.0) does not
    assert (
        "accepted as same speaker at threshold 0.5000: 2/6 pairs (33.3%); "
        "mean similarity is not above the threshold"
    ) in out

    fake.calls.clear()
    assert verify_mod.main(["--spk", "A", "--csv", str(fake_csv)]) == 0
    out = capsys.readouterr().out
    assert fake.calls == [["A_0", "A_1", "A_2"]]
    sap = torch.tensor([0.0, 2**-0.5, 2**-0.5]).double()
    sim_line = next(x for x in out.splitlines() if "similarity  " in x)
    want = [sap.mean(), sap.std(), sap.min(), sap.max()]
    assert _numbers(sim_line) == pytest.approx(
        [float(w) for w in want], abs=1e-4
    )
    assert "speaker A: 3 utterances" in out
    assert "SAP (anchor-positive, same speaker) over 3 pairs:" in out
    assert "2/3 pairs (66.7%)" in out


# ------------------------------------------------- evaluate_trials

# Target trials with cosines 0.9, 0.8, 0.7, 0.45 and non-target trials
# with cosines 0.6, 0.4, 0.2, 0.1, all against the enrolment vector (1, 0).
TARGET = (0.9, 0.8, 0.7, 0.45)
NONTARGET = (0.6, 0.4, 0.2, 0.1)


def _known_trials():
    vectors = {"e": [1.0, 0.0]}
    trials = []
    for label, cosines in ((1, TARGET), (0, NONTARGET)):
        for c in cosines:
            name = f"t{label}_{c}"
            vectors[name] = [c, math.sqrt(1 - c * c)]
            trials.append((label, "e", name))
    utts = {u: Utterance(u, "S", f"/audio/{u}.wav") for u in vectors}
    return vectors, trials, utts


def test_evaluate_trials_known_scores():
    vectors, trials, utts = _known_trials()
    fake = FakeModel(vectors, threshold=0.5)
    result = evaluation.evaluate_trials(
        fake, trials, utts, info={"model": "fake"}
    )
    assert result.scores.tolist() == pytest.approx(TARGET + NONTARGET)
    assert len(fake.calls) == 1 and sorted(fake.calls[0]) == sorted(utts)
    report = result.report
    # Accepting above 0.5 misses 0.45 and accepts 0.6: FRR = FAR = 1/4,
    # which is also the equal error rate.
    assert report["eer"] == pytest.approx(0.25)
    assert report["at_threshold"] == pytest.approx(
        {"false_reject_rate": 0.25, "false_accept_rate": 0.25}
    )
    # minDCF(0.01): missing 0.45 (cost 0.01 / 4) beats any false accept;
    # normalized by the cost of rejecting all (0.01).
    assert report["min_dcf_0.01"] == pytest.approx(0.25)
    assert (report["n_target"], report["n_nontarget"]) == (4, 4)
    assert (report["n_trials"], report["n_utterances"]) == (8, 9)
    assert report["model"] == "fake" and report["threshold"] == 0.5
    assert report["score"] == "cosine similarity"
    assert "snorm" not in report and "raw" not in report and not result.snorm


def test_evaluate_trials_snorm_and_files(tmp_path):
    vectors, trials, utts = _known_trials()
    cohort_vectors = {"c0": [0.0, 1.0], "c1": [-1.0, 0.0], "c2": [0.6, 0.8]}
    fake = FakeModel({**vectors, **cohort_vectors}, threshold=0.5)
    cohort = evaluation.Cohort(
        tmp_path / "train.csv",
        seed=3,
        utterances=[Utterance(c, "X", f"{c}.wav") for c in cohort_vectors],
    )
    result = evaluation.evaluate_trials(fake, trials, utts, cohort=cohort)
    # s-norm by hand: every test vector t has cosines (t_y, -t_x, .6 t_x +
    # .8 t_y) with the cohort; the enrolment vector has (0, -1, 0.6).
    e_cs = torch.tensor([0.0, -1.0, 0.6])
    want = []
    for c in TARGET + NONTARGET:
        s = math.sqrt(1 - c * c)
        t_cs = torch.tensor([s, -c, 0.6 * c + 0.8 * s])
        z_e = (c - e_cs.mean()) / e_cs.std()
        z_t = (c - t_cs.mean()) / t_cs.std()
        want.append(float(0.5 * (z_e + z_t)))
    assert result.scores.tolist() == pytest.approx(want, abs=1e-5)
    report = result.report
    assert report["snorm"] == {
        "cohort_size": 3,
        "top_n": None,
        "seed": 3,
        "no_speech_files": 0,
    }
    assert report["score"] == "s-norm" and result.snorm
    assert report["raw"]["eer"] == pytest.approx(0.25)
    # FRR / FAR at the stored threshold stay those of the cosine scores.
    assert report["at_threshold"]["false_reject_rate"] == pytest.approx(0.25)

    written = evaluation.write_evaluation(tmp_path / "out", result)
    assert [p.name for p in written] == list(evaluation.EVALUATION_FILES)
    assert json.loads(written[1].read_text()) == report
    lines = written[0].read_text().splitlines()
    assert [ln.split()[:3] for ln in lines] == [
        [e, t, str(label)] for label, e, t in trials
    ]
    assert [float(ln.split()[3]) for ln in lines] == pytest.approx(
        want, abs=1e-5
    )


def test_draw_cohort_excludes_and_is_seeded(tmp_path):
    train = _write_manifest(
        tmp_path / "train.csv", {f"S{i}": [f"u{i}"] for i in range(6)}
    )
    cohort = evaluation.draw_cohort(train, 4, seed=5, exclude=["u0", "u1"])
    ids = [u.utt_id for u in cohort.utterances]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert set(ids) <= {"u2", "u3", "u4", "u5"}
    again = evaluation.draw_cohort(train, 4, seed=5, exclude=["u0", "u1"])
    assert again == cohort and cohort.csv == train and cohort.seed == 5
    everything = evaluation.draw_cohort(train, 100, exclude=["u0"])
    assert sorted(u.utt_id for u in everything.utterances) == [
        "u1",
        "u2",
        "u3",
        "u4",
        "u5",
    ]
    with pytest.raises(ConfigError, match="cohort_size"):
        evaluation.draw_cohort(train, 1)
    with pytest.raises(DataError, match="2\\+ cohort"):
        evaluation.draw_cohort(train, 5, exclude=[f"u{i}" for i in range(5)])


def test_load_trials_errors(tmp_path, fake_csv):
    trials = tmp_path / "trials.txt"
    trials.write_text("1 A_0 A_1\n0 A_0 Z_9\n")
    with pytest.raises(DataError, match="1 trial utterance.*Z_9"):
        evaluation.load_trials(trials, fake_csv)
    trials.write_text("1 A_0\n")
    with pytest.raises(DataError, match=":1: expected"):
        evaluation.load_trials(trials, fake_csv)
    with pytest.raises(MissingFileError, match="trials file not found"):
        evaluation.load_trials(tmp_path / "nope.txt", fake_csv)
    trials.write_text("1 A_0 A_1\n1 A_1 A_2\n")
    got, utts = evaluation.load_trials(trials, fake_csv)
    assert list(utts) == ["A_0", "A_1", "A_2"]
    with pytest.raises(DataError, match="non-target"):
        evaluation.evaluate_trials(FakeModel(VECTORS), got, utts)


# ------------------------------------------------- identification


def test_identify_ranks_fake_speakers(
    verify_mod, tmp_path, monkeypatch, capsys
):
    # Speaker models: A = mean((1, 0), (0, 1)) -> (1, 1) / sqrt 2;
    # B = (0, 1) (B_q, the query file, is left out); C = (-1, 0).
    vectors = {
        "A_0": [1.0, 0.0],
        "A_1": [0.0, 1.0],
        "B_0": [0.0, 2.0],
        "B_q": [0.6, 0.8],
        "C_0": [-1.0, 0.0],
    }
    enrol = tmp_path / "enrol"
    for name in vectors:
        spk = name[0]
        (enrol / spk).mkdir(parents=True, exist_ok=True)
        (enrol / spk / f"{name}.wav").write_bytes(b"")
    query = enrol / "B" / "B_q.wav"
    fake = FakeModel(vectors, threshold=0.9)
    monkeypatch.setattr(verify_mod, "load_model", lambda args: fake)

    argv = ["--wav", str(query), "--enrol", str(enrol), "--top", "2"]
    assert verify_mod.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert fake.calls[0] == ["B_q"]  # the query first, alone
    assert sorted(fake.calls[1]) == ["A_0", "A_1", "B_0", "C_0"]
    a = (0.6 + 0.8) / math.sqrt(2)  # 0.98995
    assert lines == [
        f"{query} vs 3 enrolled speakers of {enrol}:",
        f"  1. {'A':<20} cosine {a:.4f}  (accept)",
        f"  2. {'B':<20} cosine 0.8000  (below threshold)",
        "speaker: A",
    ]

    fake.threshold = 0.995
    fake.calls.clear()
    assert verify_mod.main(argv[:-2] + ["--top", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in lines[1:4]] == ["A", "B", "C"]
    assert lines[3].endswith("cosine -0.6000  (below threshold)")
    assert lines[-1] == (
        f"speaker: unknown (best score {a:.4f} <= threshold 0.9950)"
    )


# ------------------------------------------------------ end to end


def _scores_file(path: Path) -> tuple[list[int], torch.Tensor]:
    rows = [ln.split() for ln in path.read_text().splitlines()]
    return [int(r[2]) for r in rows], torch.tensor([float(r[3]) for r in rows])


def test_trials_run_writes_report(tiny_prepared, model_dir, tmp_path):
    out = tmp_path / "verify"
    trials_txt = tiny_prepared / "trials.txt"
    proc = run_script(
        "verify.py",
        "--model",
        model_dir,
        "--csv",
        tiny_prepared / "test.csv",
        "--trials",
        trials_txt,
        "--out",
        out,
        "--device",
        "cpu",
        env=CPU_ENV,
    )
    assert proc.returncode == 0, proc.stderr
    trials = scoring.read_trials(trials_txt)
    report = json.loads((out / "report.json").read_text())
    assert report["n_trials"] == len(trials)
    assert report["n_target"] == sum(label for label, _, _ in trials)
    assert report["score"] == "cosine similarity"
    assert report["threshold"] == 0.8 and report["model"] == str(model_dir)

    # scores.txt: the trials in order, each scored by the cosine of the
    # two files' embeddings (computed here one file at a time).
    lines = (out / "scores.txt").read_text().splitlines()
    assert [ln.split()[:3] for ln in lines] == [
        [e, t, str(label)] for label, e, t in trials
    ]
    labels, scores = _scores_file(out / "scores.txt")
    model = DeepSpeaker.from_hparams(model_dir, run_opts={"device": "cpu"})
    wavs = {
        Path(r["wav"]).stem: r["wav"].replace("{data_root}", str(tiny_prepared))
        for r in csv.DictReader(
            (tiny_prepared / "test.csv").read_text().splitlines()
        )
    }
    emb = {u: model.encode_file(wavs[u]) for _, e, t in trials for u in (e, t)}
    want = [float(DeepSpeaker.similarity(emb[e], emb[t])) for _, e, t in trials]
    assert scores.tolist() == pytest.approx(want, abs=1e-4)

    # The metrics agree with SpeechBrain's EER and with counting.
    lab = torch.tensor(labels).bool()
    eer, _ = EER(scores[lab], scores[~lab])
    assert report["eer"] == pytest.approx(eer, abs=1e-5)
    assert report["at_threshold"] == pytest.approx(
        {
            "false_reject_rate": float((scores[lab] <= 0.8).float().mean()),
            "false_accept_rate": float((scores[~lab] > 0.8).float().mean()),
        },
        abs=1e-5,
    )
    assert f"EER            {100 * eer:.2f}%" in proc.stdout
    for name in evaluation.EVALUATION_FILES:
        assert f"wrote {out / name}" in proc.stdout


def _with_non_speech(prepared: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of ``test.csv`` (absolute paths) with a silent and a tone
    file added as utterances of two test speakers; returns it and the
    added utterance ids -> their files."""
    sr = 8000
    t = np.arange(3 * sr) / sr
    added = {
        "VIVOSDEV01_SILENT": np.zeros(3 * sr),
        "VIVOSDEV02_TONE": 0.3 * np.sin(2 * np.pi * 440 * t),
    }
    text = (prepared / "test.csv").read_text()
    lines = text.replace("{data_root}", str(prepared)).splitlines()
    files = {}
    for utt, x in added.items():
        files[utt] = tmp_path / f"{utt}.wav"
        sf.write(files[utt], x.astype("float32"), sr)
        spk = utt.rpartition("_")[0]
        lines.append(f"{utt}_0,3.0,{files[utt]},0,{3 * sr},{spk},m,")
    csv_path = tmp_path / "test.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path, files


def test_non_speech_files_are_left_out_and_counted(
    verify_mod, tiny_prepared, model_dir, tmp_path, capsys
):
    csv_path, files = _with_non_speech(tiny_prepared, tmp_path)
    real = scoring.read_trials(tiny_prepared / "trials.txt")
    spk_utts = sorted({e for _, e, _ in real if e.startswith("VIVOSDEV01")})
    # trials that name the silent or the tone file, both kinds
    extra = [
        (1, spk_utts[0], "VIVOSDEV01_SILENT"),
        (0, "VIVOSDEV02_TONE", spk_utts[0]),
        (0, "VIVOSDEV01_SILENT", "VIVOSDEV02_TONE"),
    ]
    trials_txt = tmp_path / "trials.txt"
    trials_txt.write_text(
        "".join(f"{lab} {e} {t}\n" for lab, e, t in [*extra, *real])
    )
    out = tmp_path / "verify"
    common = ["--model", str(model_dir), "--csv", str(csv_path)]
    argv = common + ["--trials", str(trials_txt), "--out", str(out)]
    assert verify_mod.main(argv + ["--device", "cpu"]) == 0
    captured = capsys.readouterr()
    warnings = [
        x for x in captured.err.splitlines() if x.startswith("warning:")
    ]
    assert len(warnings) == 1, captured.err
    assert "2 file(s) hold no speech" in warnings[0]
    assert "with their 3 trials" in warnings[0]
    assert all(str(f) in warnings[0] for f in files.values())
    report = json.loads((out / "report.json").read_text())
    assert report["no_speech_files"] == 2
    assert report["trials_left_out"] == 3
    assert report["n_trials"] == len(real)
    assert [e["utt_id"] for e in report["no_speech"]] == sorted(files)
    assert all("holds no speech" in e["reason"] for e in report["no_speech"])
    # the scored trials are exactly the real ones
    lines = (out / "scores.txt").read_text().splitlines()
    assert [ln.split()[:3] for ln in lines] == [
        [e, t, str(lab)] for lab, e, t in real
    ]
    assert f"{len(real)} trials" in captured.out

    # --spk: SAP over speaker 1 leaves out its silent file and its pairs
    n_utts = len(
        {
            r["wav"]
            for r in csv.DictReader(
                (tiny_prepared / "test.csv").read_text().splitlines()
            )
            if r["spk_id"] == "VIVOSDEV01"
        }
    )
    assert verify_mod.main(common + ["--spk", "VIVOSDEV01"]) == 0
    captured = capsys.readouterr()
    assert f"speaker VIVOSDEV01: {n_utts} utterances" in captured.out
    n_pairs = n_utts * (n_utts - 1) // 2
    assert f"over {n_pairs} pairs:" in captured.out
    assert "1 file(s) hold no speech" in captured.err
    assert str(files["VIVOSDEV01_SILENT"]) in captured.err


def test_evaluations_read_each_file_once(
    tiny_prepared, model_dir, tmp_path, monkeypatch
):
    """The speech check and the embedding share one read of each file
    (verify.py --trials and --spk): the files with speech are embedded,
    the others reported, and no file is read twice."""
    from deep_speaker_sb import inference

    csv_path, files = _with_non_speech(tiny_prepared, tmp_path)
    model = DeepSpeaker.from_config(model_dir, run_opts={"device": "cpu"})
    reads: collections.Counter = collections.Counter()
    read_audio = inference.read_audio

    def counted(path):
        reads[Path(path)] += 1
        return read_audio(path)

    monkeypatch.setattr(inference, "read_audio", counted)
    real = scoring.read_trials(tiny_prepared / "trials.txt")
    extra = [(0, "VIVOSDEV01_SILENT", "VIVOSDEV02_TONE")]
    trials_txt = tmp_path / "trials.txt"
    trials_txt.write_text(
        "".join(f"{lab} {e} {t}\n" for lab, e, t in [*extra, *real])
    )
    trials, utts = evaluation.load_trials(trials_txt, csv_path)
    result = evaluation.evaluate_trials(model, trials, utts, batch_size=4)
    assert result.report["no_speech_files"] == 2
    assert result.report["n_trials"] == len(real)
    assert set(reads) == {Path(u.wav) for u in utts.values()}
    assert set(reads.values()) == {1}

    reads.clear()
    utts_a, _ = evaluation.speaker_pair_utterances(
        csv_path, "VIVOSDEV01", "VIVOSDEV01"
    )
    stats = evaluation.speaker_pair_statistics(model, utts_a, batch_size=4)
    assert stats["no_speech_files"] == 1
    assert stats["n_a"] == len(utts_a) - 1
    assert set(reads) == {Path(u.wav) for u in utts_a}
    assert set(reads.values()) == {1}


def test_snorm_spk_and_identify(
    verify_mod, tiny_prepared, model_dir, tmp_path, capsys
):
    csv_path = str(tiny_prepared / "test.csv")
    common = ["--model", str(model_dir), "--csv", csv_path, "--device", "cpu"]
    out = tmp_path / "snorm"
    args = ["--snorm", "--cohort_size", "5", "--snorm_top", "3"]
    assert verify_mod.main(common + args + ["--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"s-norm cohort: 5 utterances of {tiny_prepared / 'train.csv'}" in (
        stdout
    )
    report = json.loads((out / "report.json").read_text())
    assert report["score"] == "s-norm"
    assert report["snorm"] == {
        "cohort_size": 5,
        "top_n": 3,
        "seed": 0,
        "no_speech_files": 0,
    }
    labels, scores = _scores_file(out / "scores.txt")
    lab = torch.tensor(labels).bool()
    eer, _ = EER(scores[lab], scores[~lab])
    assert report["eer"] == pytest.approx(eer, abs=1e-5)
    assert f"raw cosine EER {100 * report['raw']['eer']:.2f}%" in stdout

    # --spk with the model found under --results; utterance counts from
    # the manifest.
    rows = list(csv.DictReader(Path(csv_path).read_text().splitlines()))
    n_utts = {
        spk: len({r["wav"] for r in rows if r["spk_id"] == spk})
        for spk in ("VIVOSDEV01", "VIVOSDEV02")
    }
    by_results = ["--results", str(model_dir.parent.parent), "--csv", csv_path]
    assert verify_mod.main(by_results + ["--spk", "VIVOSDEV01,VIVOSDEV02"]) == 0
    stdout = capsys.readouterr().out
    assert (
        f"speaker A VIVOSDEV01: {n_utts['VIVOSDEV01']} utterances; "
        f"speaker B VIVOSDEV02: {n_utts['VIVOSDEV02']} utterances"
    ) in stdout
    n_pairs = n_utts["VIVOSDEV01"] * n_utts["VIVOSDEV02"]
    assert f"SAN (anchor-negative, A x B) over {n_pairs} pairs:" in stdout

    # Identification: the enrolment folder and the manifest hold the same
    # files, so they give the same ranked list of all three speakers.
    spk = "VIVOSDEV01"
    wav = next((tiny_prepared / "wavs" / "test" / spk).glob("*.wav"))
    listings = []
    for enrol in (csv_path, str(tiny_prepared / "wavs" / "test")):
        code = verify_mod.main(common + ["--wav", str(wav), "--enrol", enrol])
        assert code == 0
        lines = capsys.readouterr().out.splitlines()
        listings.append(lines[2:])
    assert listings[0] == listings[1]
    ranked = listings[0][:3]
    assert sorted(ln.split()[1] for ln in ranked) == [
        "VIVOSDEV01",
        "VIVOSDEV02",
        "VIVOSDEV03",
    ]
    cosines = [float(ln.split()[3]) for ln in ranked]
    assert cosines == sorted(cosines, reverse=True)
    best, marks = ranked[0].split()[1], [ln.split()[-1] for ln in ranked]
    assert marks == ["(accept)" if c > 0.8 else "threshold)" for c in cosines]
    assert listings[0][3] == (
        f"speaker: {best}"
        if cosines[0] > 0.8
        else f"speaker: unknown (best score {cosines[0]:.4f} <= threshold "
        "0.8000)"
    )


# ------------------------------------------------------- bad input


def test_bad_inputs_give_one_error_line(
    verify_mod, tiny_prepared, model_dir, fake_csv, tmp_path, capsys
):
    csv_path = str(tiny_prepared / "test.csv")
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
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, np.full(800, np.nan, "float32"), 8000, subtype="FLOAT")
    garbage_ckpt = tmp_path / "garbage_ckpt"
    broken_yaml = tmp_path / "broken_yaml"
    for copy in (garbage_ckpt, broken_yaml):
        copy.mkdir()
        for f in model_dir.iterdir():
            (copy / f.name).write_bytes(f.read_bytes())
    (garbage_ckpt / "embedding_model.ckpt").write_bytes(b"garbage")
    (broken_yaml / "hyperparams.yaml").write_text("a: [\n")
    no_config = tmp_path / "no_config"
    shutil.copytree(model_dir, no_config)
    (no_config / "config.json").unlink()
    spk = "VIVOSDEV01"
    out_file = tmp_path / "out_is_a_file"
    out_file.write_text("")
    cases = {
        "garbage checkpoint": (
            ["--model", str(garbage_ckpt), "--csv", csv_path, "--spk", spk],
            ["cannot load", "garbage_ckpt", "embedding_model.ckpt"],
        ),
        "garbage checkpoint, --trust_yaml": (
            ["--model", str(garbage_ckpt), "--csv", csv_path, "--spk", spk]
            + ["--trust_yaml"],
            ["cannot load the model", "garbage_ckpt"],
        ),
        "broken hyperparams.yaml, --trust_yaml": (
            ["--model", str(broken_yaml), "--csv", csv_path, "--spk", spk]
            + ["--trust_yaml"],
            ["cannot load the model", "hyperparams.yaml"],
        ),
        "no config.json": (
            ["--model", str(no_config), "--csv", csv_path, "--spk", spk],
            ["config.json missing", "--trust_yaml"],
        ),
        "three speakers": (
            model + ["--csv", csv_path, "--spk", "A,B,C"],
            ["--spk takes one or two speaker ids"],
        ),
        "out is a file": (
            model + ["--csv", csv_path, "--out", str(out_file)],
            ["--out", "is a file"],
        ),
        "non-finite wav": (  # printed "cosine nan ... unknown", exit 0
            model + ["--wav", str(nan_wav), "--enrol", csv_path],
            ["nan.wav", "NaN or infinite"],
        ),
        "unknown speaker": (
            model + ["--csv", csv_path, "--spk", "VIVOSDEV01,NOPE"],
            ["NOPE", "VIVOSDEV01"],
        ),
        "SAP with one utterance": (
            model + ["--csv", str(fake_csv), "--spk", "C,C"],
            ["only 1 utterance"],
        ),
        "missing model": (
            ["--model", str(tmp_path / "nope"), "--csv", csv_path],
            ["not found", "train_triplet.py"],
        ),
        "incomplete model": (
            ["--model", str(incomplete), "--csv", csv_path],
            ["embedding_model.ckpt", "train_triplet.py"],
        ),
        "unreadable wav": (
            model + ["--wav", str(bad_wav), "--enrol", csv_path],
            ["cannot read audio", "bad.wav"],
        ),
        "missing wav": (
            model + ["--wav", str(tmp_path / "no.wav"), "--enrol", csv_path],
            ["audio file not found", "no.wav"],
        ),
        "missing enrolment": (
            model + ["--wav", str(bad_wav), "--enrol", str(tmp_path / "x")],
            ["enrolment CSV or folder not found"],
        ),
        "empty trials": (
            model + ["--csv", csv_path, "--trials", str(empty)],
            ["no trial"],
        ),
        "missing trials": (
            model + ["--csv", csv_path, "--trials", str(tmp_path / "t")],
            ["trials file not found"],
        ),
        "missing manifest": (
            model + ["--csv", str(tmp_path / "no.csv"), "--spk", "A"],
            ["no.csv", "not found"],
        ),
        "bad batch size": (
            model + ["--csv", csv_path, "--batch_size", "0"],
            ["--batch_size"],
        ),
        "bad cohort size": (
            model + ["--csv", csv_path, "--snorm", "--cohort_size", "1"],
            ["--cohort_size"],
        ),
    }
    # Every case in-process through the scripts' error handler ...
    for name, (argv, words) in cases.items():
        code = run_cli(lambda argv=argv: verify_mod.main(argv))
        err = capsys.readouterr().err
        errors = [x for x in err.splitlines() if x.startswith("error: ")]
        assert code == 1, name
        assert "Traceback" not in err, (name, err)
        assert len(errors) == 1, (name, err)
        for word in words:
            assert word in errors[0], (name, errors[0])

    # ... and two of them as real command lines.
    for name in ("incomplete model", "unreadable wav"):
        proc = run_script("verify.py", *cases[name][0], env=CPU_ENV)
        assert proc.returncode == 1, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, (name, proc.stderr)
        errors = [x for x in proc.stderr.splitlines() if x.startswith("error")]
        assert len(errors) == 1 and errors[0] == proc.stderr.strip(), name


# ------------------------------------------------- the export's YAML


def _hostile_copy(model_dir: Path, folder: Path, marker: Path) -> Path:
    """A copy of the export whose hyperparams.yaml, when run, touches
    ``marker`` (as a hostile export could run any command)."""
    shutil.copytree(model_dir, folder)
    yaml = folder / "hyperparams.yaml"
    command = json.dumps(f"touch {shlex.quote(str(marker))}")
    yaml.write_text(
        yaml.read_text() + f"\n__hostile: !apply:os.system [{command}]\n"
    )
    return folder


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_model_yaml_runs_only_with_trust_yaml(
    verify_mod, tiny_prepared, model_dir, tmp_path, capsys, backend
):
    marker = tmp_path / "code_ran"
    hostile = _hostile_copy(model_dir, tmp_path / "hostile", marker)
    argv = [
        "--model", str(hostile), "--csv", str(tiny_prepared / "test.csv"),
        "--spk", "VIVOSDEV01,VIVOSDEV02", "--device", "cpu",
        "--backend", backend,
    ]  # fmt: skip
    assert verify_mod.main(argv) == 0
    assert not marker.exists()  # rebuilt from config.json: nothing ran
    plain = capsys.readouterr().out
    assert "SAN (anchor-negative, A x B) over" in plain
    # the opt-in runs the YAML (and gives the same numbers)
    assert verify_mod.main([*argv, "--trust_yaml"]) == 0
    assert marker.exists()
    assert capsys.readouterr().out == plain


def test_spk_repeated_takes_ids_with_commas(
    verify_mod, tiny_prepared, model_dir, tmp_path, capsys
):
    # a speaker id holding a comma, named with --spk twice
    csv_path = tmp_path / "test.csv"
    text = (tiny_prepared / "test.csv").read_text()
    csv_path.write_text(
        text.replace("{data_root}", str(tiny_prepared)).replace(
            ",VIVOSDEV01,", ',"DEV,01",'
        )
    )
    common = ["--model", str(model_dir), "--csv", str(csv_path)]
    common += ["--device", "cpu"]
    assert verify_mod.main([*common, "--spk", "DEV,01", "--spk", "DEV,01"]) == 0
    out = capsys.readouterr().out
    assert "speaker DEV,01: " in out and "SAP (anchor-positive" in out
    assert (
        verify_mod.main([*common, "--spk", "DEV,01", "--spk", "VIVOSDEV02"])
        == 0
    )
    assert "speaker A DEV,01: " in capsys.readouterr().out
    # one value keeps splitting at the comma, as before
    assert verify_mod.main([*common, "--spk", "VIVOSDEV02,VIVOSDEV03"]) == 0
    out = capsys.readouterr().out
    assert "speaker A VIVOSDEV02" in out and "speaker B VIVOSDEV03" in out
