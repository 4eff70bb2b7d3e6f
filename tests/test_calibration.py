"""Score calibration: LLRs, Cllr / min-Cllr, operating points, and their
use by the backends, the reports and ``verify.py``.

The statistics are checked on synthetic Gaussian scores (whose true LLR
is known); the backends on a narrow untrained export
(tests/conftest.py's ``export_narrow``) with a calibration written into it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deep_speaker_sb import evaluation, scoring
from deep_speaker_sb.calibration import (
    Calibration,
    OperatingPoint,
    ScoreCalibration,
    cllr,
    far_point,
    fit_logistic,
    min_cllr,
    pav_llrs,
)
from deep_speaker_sb.dataio import Utterance
from deep_speaker_sb.embedding import SpeechEmbeddings
from deep_speaker_sb.errors import ConfigError, DataError
from deep_speaker_sb.export import read_score_calibration
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.runtime import OnnxSpeaker
from tests.conftest import (
    SR,
    export_narrow,
    load_script,
    run_in_process,
    speech_like,
)


def _gaussian(n_tar, n_non, seed=0, mu=(0.5, 0.2), sd=0.1):
    rng = np.random.default_rng(seed)
    return rng.normal(mu[0], sd, n_tar), rng.normal(mu[1], sd, n_non)


# ------------------------------------------------------------ statistics


def test_calibration_is_monotonic_and_keeps_the_eer():
    g = torch.Generator().manual_seed(3)
    labels = (torch.rand(3000, generator=g) < 0.3).long()
    scores = torch.randn(3000, generator=g) * 0.2 + 0.3 * labels
    fitted = scoring.calibrate(labels, scores, "random")
    llrs = torch.from_numpy(fitted.calibration.llr(scores.double().numpy()))
    assert fitted.calibration.a > 0
    assert torch.equal(torch.argsort(llrs), torch.argsort(scores.double()))
    pos, neg = scoring.split_scores(labels, scores)
    lpos, lneg = scoring.split_scores(labels, llrs)
    assert scoring.compute_eer(lpos, lneg)[0] == pytest.approx(
        scoring.compute_eer(pos, neg)[0], abs=1e-9
    )
    # the EER point is the EER threshold of these trials
    assert fitted.points["eer"].threshold == pytest.approx(
        scoring.compute_eer(pos, neg)[1]
    )


def test_fit_recovers_the_true_llr_of_gaussian_scores():
    # equal variances: llr(s) = (m1 - m0) / sd^2 * s - (m1^2 - m0^2) / 2sd^2
    tar, non = _gaussian(20000, 60000, seed=1)
    cal = fit_logistic(tar, non)
    assert cal.a == pytest.approx(0.3 / 0.01, rel=0.05)
    assert cal.b == pytest.approx(-(0.25 - 0.04) / 0.02, rel=0.05)
    assert (cal.n_target, cal.n_nontarget, cal.trials) == (20000, 60000, 80000)
    # well calibrated on its own trials: Cllr close to min-Cllr
    assert cal.cllr - cal.min_cllr < 0.01


def test_cllr_bounds_and_min_cllr():
    for seed in range(5):
        tar, non = _gaussian(300, 700, seed=seed, mu=(0.4, 0.3))
        cal = fit_logistic(tar, non)
        assert cal.cllr >= cal.min_cllr >= 0.0
        # any other monotonic map is no better than PAV's
        assert cllr(3 * cal.llr(tar) + 1, 3 * cal.llr(non) + 1) >= (
            cal.min_cllr
        )
        # min-Cllr depends only on the ranking
        assert min_cllr(np.exp(tar), np.exp(non)) == pytest.approx(cal.min_cllr)
    assert min_cllr([0.9, 0.8, 0.95], [0.1, 0.2, 0.5]) == pytest.approx(0.0)
    assert cllr([0.0], [0.0]) == pytest.approx(1.0)
    # PAV pools equal scores: one LLR per score value
    t, n = pav_llrs([0.5, 0.7], [0.5, 0.1])
    assert t[0] == n[0]


def test_fit_refuses_useless_scores():
    with pytest.raises(DataError, match="no better than chance"):
        fit_logistic([0.1, 0.2, 0.15], [0.8, 0.9, 0.85])
    with pytest.raises(DataError, match="both target and non-target"):
        fit_logistic([0.5, 0.6], [])
    with pytest.raises(DataError, match="not all equal"):
        fit_logistic([0.5, 0.5], [0.5])


def test_far_threshold_on_fitted_and_held_out_trials():
    tar, non = _gaussian(2000, 5000, seed=2)
    point = far_point(tar, non, 0.01, "fit")
    assert point.reliable and point.name == "far_0.01"
    assert point.far <= 0.01
    assert point.far == pytest.approx(float((non > point.threshold).mean()))
    assert point.frr == pytest.approx(float((tar <= point.threshold).mean()))
    held_tar, held_non = _gaussian(2000, 50000, seed=3)
    measured = float((held_non > point.threshold).mean())
    assert 0.005 <= measured <= 0.02
    # 5000 non-targets are too few to measure a FAR of 0.1%
    rare = far_point(tar, non, 0.001)
    assert not rare.reliable and rare.far <= 0.001
    assert "unreliable" in rare.describe()


def test_select_operating_points():
    sc = ScoreCalibration(
        Calibration(10.0, -4.0),
        {
            "eer": OperatingPoint("eer", 0.4),
            "far_0.01": OperatingPoint("far_0.01", 0.6, 0.01),
            "far_0.001": OperatingPoint("far_0.001", 0.7, 0.001),
        },
    )
    assert sc.select(None, stored=0.1).name == "eer"
    assert sc.select(0.01, stored=0.1).threshold == 0.6
    with pytest.raises(ConfigError) as err:
        sc.select(0.05, stored=0.1)
    assert "FAR 0.05 (available: 0.01, 0.001)" in str(err.value)
    old = ScoreCalibration.from_config({"format": 1})  # no calibration keys
    assert old.calibration is None and old.llr(0.5) is None
    assert old.select(None, stored=0.3).threshold == 0.3
    with pytest.raises(ConfigError, match="no FAR operating points"):
        old.select(0.01, stored=0.3)
    with pytest.raises(DataError, match="a > 0"):
        ScoreCalibration.from_config({"calibration": {"a": -1.0, "b": 0.0}})


# ------------------------------------------------------------ reports


class FakeModel:
    """Embeds '<spk>_<n>' files as their speaker's direction + noise."""

    def __init__(self, sc: ScoreCalibration | None, folder=Path("fake")):
        self.folder = folder
        self.score_calibration = sc or ScoreCalibration()
        self.operating_point = self.score_calibration.select(None, 0.5)
        self.threshold = self.operating_point.threshold
        self.calibration = self.score_calibration.calibration

    def encode_speech_files(self, paths, batch_size=32):
        """All speech."""
        return SpeechEmbeddings(self.encode_files(paths, batch_size), {})

    def encode_files(self, paths, batch_size=32):
        out = []
        for p in paths:
            spk, n = Path(p).stem.split("_")
            g = torch.Generator().manual_seed(100 * int(spk) + int(n))
            base = torch.eye(8)[int(spk)]
            out.append(base + 0.6 * torch.randn(8, generator=g))
        return torch.stack(out)


def _utts(n_spk=4, n_utt=6) -> dict[str, Utterance]:
    return {
        f"{s}_{u}": Utterance(f"{s}_{u}", str(s), f"{s}_{u}.wav")
        for s in range(n_spk)
        for u in range(n_utt)
    }


def _all_trials(utts) -> list[tuple[int, str, str]]:
    ids = sorted(utts)
    return [
        (int(utts[a].spk_id == utts[b].spk_id), a, b)
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
    ]


def test_report_has_cllr_duration_eer_and_reliability(tmp_path):
    utts = _utts()
    trials = _all_trials(utts)
    plain = evaluation.evaluate_trials(FakeModel(None), trials, utts)
    labels = [t[0] for t in plain.trials]
    fitted = scoring.calibrate(labels, plain.scores, "the same trials")
    durations = {u: 1.0 + (i % 5) for i, u in enumerate(sorted(utts))}
    result = evaluation.evaluate_trials(
        FakeModel(fitted), trials, utts, durations=durations
    )
    report = result.report
    assert report["cllr"] == pytest.approx(fitted.calibration.cllr)
    assert report["min_cllr"] == pytest.approx(fitted.calibration.min_cllr)
    assert report["cllr"] >= report["min_cllr"] >= 0
    assert report["calibration"]["a"] == fitted.calibration.a
    assert report["operating_point"] == "eer"
    far = report["operating_points"]["far_0.01"]
    assert far["false_accept_rate"] == pytest.approx(
        fitted.points["far_0.01"].far
    )
    buckets = report["eer_by_duration"]
    assert list(buckets) == ["<2s", "2-4s", ">4s"]
    assert sum(b["n_trials"] for b in buckets.values()) == len(trials)
    n_short = sum(durations[t[2]] < 2 for t in trials)
    assert buckets["<2s"]["n_trials"] == n_short
    written = evaluation.write_evaluation(tmp_path, result)
    assert written[-1] == tmp_path / "reliability.png"
    assert written[-1].read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["cllr"] == pytest.approx(report["cllr"])
    # an uncalibrated model: min-Cllr only, no reliability diagram
    assert plain.report["cllr"] is None and plain.report["min_cllr"] > 0
    assert plain.llrs is None
    assert "reliability.png" not in [
        p.name for p in evaluation.write_evaluation(tmp_path / "p", plain)
    ]


# ------------------------------------------------ exports and backends


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[Path, Path, ScoreCalibration]:
    """A narrow export (with ONNX graphs), a copy of it calibrated, and
    the calibration."""
    root = tmp_path_factory.mktemp("calibrated")
    plain = root / "plain"
    export_narrow(plain, "fbank")
    folder = root / "calibrated"
    export_narrow(folder, "fbank")
    tar, non = _gaussian(1500, 3000, seed=4, mu=(0.9, 0.7), sd=0.05)
    labels = [1] * len(tar) + [0] * len(non)
    fitted = scoring.calibrate(
        labels, torch.from_numpy(np.concatenate([tar, non])), "synthetic"
    )
    from deep_speaker_sb.export import write_score_calibration

    write_score_calibration(folder, fitted)
    return plain, folder, fitted


@pytest.fixture(scope="module")
def wav_pair(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pair")
    a, b = d / "a.wav", d / "b.wav"
    sf.write(a, speech_like(2.0, 21), SR)
    sf.write(b, speech_like(2.5, 22), SR)
    return a, b


def test_export_without_calibration_loads_as_before(calibrated, wav_pair):
    plain, _, _ = calibrated
    config = json.loads((plain / "config.json").read_text())
    assert "calibration" not in config and "operating_points" not in config
    model = DeepSpeaker.from_hparams(source=plain, run_opts={"device": "cpu"})
    assert model.threshold == pytest.approx(0.4)  # threshold.json's
    assert model.operating_point.name == "threshold.json"
    assert model.calibration is None and model.llr(0.5) is None
    verdict = model.verify_pair(*wav_pair)
    assert verdict.llr is None and verdict.posterior is None
    assert verdict.same_speaker == (verdict.cosine > 0.4)
    runtime = OnnxSpeaker(plain, threads=1)
    assert runtime.threshold == pytest.approx(0.4)
    assert runtime.llr(0.5) is None
    with pytest.raises(ConfigError, match="no FAR operating points"):
        DeepSpeaker.from_hparams(source=plain, far=0.01)


def _decision_row(card: str) -> str:
    """The value of the model card's decision threshold row."""
    (row,) = [r for r in card.splitlines() if r.startswith("| decision ")]
    return row.split("|")[2].strip()


def _row_names(card: str) -> list[str]:
    return [r.split("|")[1].strip() for r in card.splitlines() if r[:1] == "|"]


def test_card_and_hparams_name_the_threshold_that_decides(calibrated, tmp_path):
    """Where config.json has an EER operating point, that decides, and
    the model card's row shows it (at export and after a calibration),
    not threshold.json's threshold."""
    plain, folder, fitted = calibrated
    plain_card = (plain / "model_card.md").read_text()
    assert _decision_row(plain_card) == (
        "0.4000 (threshold.json; accept if cosine > it)"
    )
    eer = fitted.points["eer"].threshold
    assert eer != pytest.approx(0.4, abs=1e-3)
    want = (
        f"{eer:.4f} (the eer operating point of config.json; "
        "accept if cosine > it)"
    )
    card = (folder / "model_card.md").read_text()
    assert _decision_row(card) == want  # updated by write_score_calibration
    # ... in its place; the calibration row added at the end
    assert _row_names(card) == [*_row_names(plain_card), "score calibration"]
    at_export = tmp_path / "pretrained"
    export_narrow(at_export, "fbank", onnx=False, score_calibration=fitted)
    assert _decision_row((at_export / "model_card.md").read_text()) == want
    for export in (plain, folder, at_export):
        comment = (export / "hyperparams.yaml").read_text().split("\n\n")[0]
        assert "config.json's EER operating point" in comment
        assert "else at threshold.json's threshold" in comment


def test_calibrate_writes_config_atomically(calibrated):
    _, folder, fitted = calibrated
    config = json.loads((folder / "config.json").read_text())
    assert config["calibration"]["a"] == pytest.approx(fitted.calibration.a)
    assert set(config["operating_points"]) == {"eer", "far_0.01", "far_0.001"}
    assert config["operating_points"]["far_0.001"]["reliable"] is False
    assert config["onnx"]["fp32"]  # the rest of config.json is kept
    assert read_score_calibration(folder) == fitted
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert (
        "| score calibration | LLR = " in (folder / "model_card.md").read_text()
    )


def test_all_backends_give_the_same_llr(calibrated, wav_pair):
    _, folder, fitted = calibrated
    cal = fitted.calibration
    verdicts = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        model = DeepSpeaker.from_hparams(
            source=folder, run_opts={"device": "cpu"}, backend=backend
        )
        assert model.operating_point == fitted.points["eer"]
        verdicts[backend] = model.verify_pair(*wav_pair, prior=0.1)
    for precision in ("fp32", "int8"):
        runtime = OnnxSpeaker(folder, precision=precision, threads=1)
        assert runtime.operating_point == fitted.points["eer"]
        verdicts[f"runtime-{precision}"] = runtime.verify_pair(
            *wav_pair, prior=0.1
        )
    for v in verdicts.values():
        assert v.llr == pytest.approx(cal.a * v.cosine + cal.b, abs=1e-9)
        assert v.posterior == pytest.approx(
            1 / (1 + np.exp(-(v.llr + np.log(0.1 / 0.9))))
        )
        assert v.point.name == "eer" and v.prior == 0.1
    ref = verdicts["torch"].llr
    # the parity tolerance of tests/test_onnx.py (1e-3 on the cosine)
    for name in ("onnx", "runtime-fp32"):
        assert verdicts[name].llr == pytest.approx(ref, abs=1e-3 * cal.a)
    # int8: the same calibration on its own (close) cosine
    assert verdicts["onnx-int8"].llr == pytest.approx(
        verdicts["runtime-int8"].llr, abs=1e-3 * cal.a
    )
    far = fitted.points["far_0.01"].threshold
    assert DeepSpeaker.from_hparams(source=folder, far=0.01).threshold == far
    assert OnnxSpeaker(folder, far=0.01).threshold == far


# ---------------------------------------------------------- verify.py


def test_verify_pair_prints_score_llr_posterior_threshold(
    calibrated, wav_pair, capsys
):
    plain, folder, fitted = calibrated
    verify = load_script("verify.py")
    a, b = map(str, wav_pair)
    argv = ["--model", str(folder), "--device", "cpu", "--pair", a, b]
    assert verify.main([*argv, "--prior", "0.2", "--far", "0.01"]) == 0
    out = capsys.readouterr().out
    model = DeepSpeaker.from_hparams(source=folder, far=0.01)
    v = model.verify_pair(a, b, prior=0.2)
    assert f"  cosine     {v.cosine:.4f}" in out
    assert f"  LLR        {v.llr:+.3f}" in out
    assert f"  posterior  {v.posterior:.4f} P(same speaker) at prior 0.2" in out
    assert f"  threshold  {fitted.points['far_0.01'].describe()}" in out
    answer = "same speaker" if v.same_speaker else "different speakers"
    assert f"verdict: {answer} (cosine {v.cosine:.4f} " in out
    assert f"far_0.01 threshold {v.point.threshold:.4f})" in out

    argv[1] = str(plain)  # no calibration: said, not invented
    assert verify.main(argv) == 0
    out = capsys.readouterr().out
    assert "  LLR        n/a (the model has no calibration" in out
    assert "threshold.json threshold 0.4000" in out


def test_verify_far_not_in_the_export_is_one_error_line(calibrated, wav_pair):
    _, folder, _ = calibrated
    a, b = map(str, wav_pair)
    argv = ["--model", str(folder), "--device", "cpu", "--pair", a, b]
    code, err = run_in_process("verify.py", [*argv, "--far", "0.05"])
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(
        "error: no operating point for FAR 0.05 (available: 0.01, 0.001)"
    )
    code, err = run_in_process("verify.py", [*argv, "--prior", "1.5"])
    assert code == 1 and err.strip().startswith("error: --prior must lie")


def _write_trials(folder: Path, csv_name: str, trials_name: str) -> list:
    """A manifest of :func:`_utts` (empty WAVs: :class:`FakeModel` reads
    none) and all their trials; returns the trials."""
    utts = _utts()
    rows = ["ID,duration,wav,start,stop,spk_id,gender,words"]
    for u in utts.values():
        (folder / u.wav).write_bytes(b"")
        rows.append(
            f"{u.utt_id}_0,3.0,{{data_root}}/{u.wav},0,1,{u.spk_id},m,x"
        )
    (folder / csv_name).write_text("\n".join(rows) + "\n")
    trials = _all_trials(utts)
    (folder / trials_name).write_text(
        "".join(f"{lab} {a} {b}\n" for lab, a, b in trials)
    )
    return trials


def test_export_calibrates_on_held_out_speakers(
    calibrated, tmp_path, monkeypatch
):
    """The triplet export fits its calibration on cal_trials.txt (speakers
    held out of training) and replaces the validation one."""
    import shutil

    from deep_speaker_sb.brains import triplet

    _, calibrated_folder, before = calibrated
    folder = tmp_path / "pretrained"
    shutil.copytree(calibrated_folder, folder)
    hparams = {
        "cal_annotation": tmp_path / "cal.csv",
        "cal_trials": tmp_path / "cal_trials.txt",
    }
    # no held-out speakers: the calibration stays as it was
    assert triplet.calibrate_on_held_out(hparams, folder) is None
    assert read_score_calibration(folder).calibration == before.calibration

    trials = _write_trials(tmp_path, "cal.csv", "cal_trials.txt")
    monkeypatch.setattr(
        triplet.DeepSpeaker,
        "from_config",
        classmethod(lambda cls, source, **kw: FakeModel(None, folder=source)),
    )
    fitted = triplet.calibrate_on_held_out(hparams, folder)
    sc = read_score_calibration(folder)
    assert sc.calibration == fitted.calibration != before.calibration
    assert sc.calibration.fitted_on == "trials of 4 held-out speakers"
    assert sc.calibration.trials == len(trials)
    assert sc.points["eer"].threshold != before.points["eer"].threshold
    card = (folder / "model_card.md").read_text()
    assert "held-out speakers" in card


def test_verify_calibrate_fits_and_writes_the_export(
    calibrated, tmp_path, monkeypatch, capsys
):
    plain, _, _ = calibrated
    folder = tmp_path / "pretrained"
    import shutil

    shutil.copytree(plain, folder)
    trials = _write_trials(tmp_path, "test.csv", "trials.txt")
    verify = load_script("verify.py")
    fake = FakeModel(None, folder=folder)
    monkeypatch.setattr(verify, "load_model", lambda args: fake)
    argv = ["--calibrate", str(tmp_path / "trials.txt")]
    argv += ["--csv", str(tmp_path / "test.csv")]
    assert verify.main(argv) == 0
    out = capsys.readouterr().out
    assert f"wrote {folder / 'config.json'}" in out
    sc = read_score_calibration(folder)
    assert sc.calibration.trials == len(trials)
    assert sc.calibration.fitted_on == f"trials of {tmp_path / 'trials.txt'}"
    assert set(sc.points) == {"eer", "far_0.01", "far_0.001"}
    # the EER point of these trials now decides
    model = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert model.threshold == sc.points["eer"].threshold
    assert model.calibration == sc.calibration
    # and the model card says so
    card = (folder / "model_card.md").read_text()
    assert _decision_row(card) == (
        f"{model.threshold:.4f} (the eer operating point of config.json; "
        "accept if cosine > it)"
    )


def test_broken_held_out_manifest_keeps_the_export(
    calibrated, tmp_path, monkeypatch, caplog
):
    """A malformed cal.csv is one warning: the export keeps its validation
    calibration and the training run does not fail at its last step."""
    import shutil

    from deep_speaker_sb.brains import triplet

    _, calibrated_folder, before = calibrated
    folder = tmp_path / "pretrained"
    shutil.copytree(calibrated_folder, folder)
    _write_trials(tmp_path, "cal.csv", "cal_trials.txt")
    (tmp_path / "cal.csv").write_text("ID,duration\nbroken,not-a-number\n")
    hparams = {
        "cal_annotation": tmp_path / "cal.csv",
        "cal_trials": tmp_path / "cal_trials.txt",
    }
    monkeypatch.setattr(
        triplet.DeepSpeaker,
        "from_config",
        classmethod(lambda cls, source, **kw: FakeModel(None, folder=source)),
    )
    with caplog.at_level("WARNING"):
        assert triplet.calibrate_on_held_out(hparams, folder) is None
    assert "no calibration on the held-out speakers" in caplog.text
    assert read_score_calibration(folder).calibration == before.calibration
