"""Tests of the data preparation (data_prep.py, deep_speaker_sb.data).

Hand-made corpora (tones framed by known silence, and broken files) check
trimming and bad input; the shared ``tiny_prepared`` fixture (the
synthetic corpus) checks the manifests, splits and trials; a listing made
in the test (no VIVOS layout) checks that the core prepares any corpus.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import inspect
import json
import logging
import math
import os
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.data import prep
from deep_speaker_sb.data.prep import (
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
    prepare_corpus,
)
from deep_speaker_sb.data.trials import make_trials
from deep_speaker_sb.data.vivos import list_vivos, prepare_vivos
from deep_speaker_sb.dataio import CSV_FIELDS, read_manifest
from deep_speaker_sb.errors import (
    ConfigError,
    DataError,
    MissingFileError,
    OutputError,
)
from tests.conftest import ROOT, load_script, run_script

SR_IN = 16000


# --------------------------------------------------------------------------
# Hand-made corpora
# --------------------------------------------------------------------------


def framed_tone(
    tone_s: float,
    silence_s: float = 1.0,
    sr: int = SR_IN,
    freq: float = 300.0,
    seed: int = 0,
) -> np.ndarray:
    """``silence_s`` of faint noise, a tone, ``silence_s`` of faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(tone_s * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    pad = np.zeros(int(silence_s * sr))
    x = np.concatenate([pad, tone, pad])
    x += 1e-4 * rng.standard_normal(len(x))  # about -80 dBFS of noise
    return x.astype(np.float32)


def make_corpus(
    root: Path, speakers: dict[str, dict[str, list[float]]]
) -> Path:
    """VIVOS layout: ``speakers[split][spk]`` lists tone lengths (s)."""
    for split, spks in speakers.items():
        prompts, genders = [], []
        for s_idx, (spk, tones) in enumerate(sorted(spks.items())):
            genders.append(f"{spk} {'mf'[s_idx % 2]}")
            folder = root / split / "waves" / spk
            folder.mkdir(parents=True, exist_ok=True)
            for u_idx, tone_s in enumerate(tones, start=1):
                utt = f"{spk}_R{u_idx:03d}"
                x = framed_tone(tone_s, freq=200 + 50 * s_idx, seed=u_idx)
                sf.write(folder / f"{utt}.wav", x, SR_IN, subtype="PCM_16")
                prompts.append(f"{utt} XIN CHÀO {u_idx}")
        (root / split / "prompts.txt").write_text(
            "\n".join(prompts) + "\n", encoding="utf-8"
        )
        (root / split / "genders.txt").write_text(
            "\n".join(genders) + "\n", encoding="utf-8"
        )
    return root


SMALL = {
    "train": {"SPKA": [2.0, 2.5, 1.5], "SPKB": [2.0, 3.5]},
    "test": {"DEVA": [2.0, 2.0], "DEVB": [1.5, 2.0]},
}


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "vivos", SMALL)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def stem(row: dict[str, str]) -> str:
    return Path(row["wav"]).stem


# --------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------


def test_make_trials_rules():
    utt2spk = {f"S{s}_U{u}": f"S{s}" for s in range(5) for u in range(6)}
    trials = make_trials(utt2spk, 40, seed=3)
    labels = [t[0] for t in trials]
    assert len(trials) == 40 and sum(labels) == 20
    keys = {frozenset((a, b)) for _, a, b in trials}
    assert len(keys) == 40  # no duplicate pair, in either order
    for label, a, b in trials:
        assert a != b
        assert label == int(utt2spk[a] == utt2spk[b])
    targets = {utt2spk[a] for lab, a, _ in trials if lab}
    assert targets == set(utt2spk.values())
    assert trials == make_trials(utt2spk, 40, seed=3)
    assert trials != make_trials(utt2spk, 40, seed=4)
    # more asked than possible: every balanced pair, still no duplicate
    everything = make_trials(utt2spk, 10**6, seed=0)
    assert len(everything) == 2 * 5 * 15
    assert len({frozenset(t[1:]) for t in everything}) == len(everything)


# --------------------------------------------------------------------------
# The prepared synthetic corpus (shared fixture)
# --------------------------------------------------------------------------


def test_manifest_columns_and_types(tiny_prepared: Path):
    for name in ("train.csv", "valid.csv", "test.csv"):
        path = tiny_prepared / name
        with open(path, encoding="utf-8") as f:
            assert f.readline().strip() == ",".join(CSV_FIELDS)
        rows = read_csv(path)
        assert rows, name
        infos = {}
        for k_row in rows:
            dur = float(k_row["duration"])
            start, stop = int(k_row["start"]), int(k_row["stop"])
            assert 1.0 <= dur <= 3.0
            assert stop - start == round(dur * 8000)
            assert k_row["wav"].startswith("{data_root}/wavs/")
            utt = stem(k_row)
            assert k_row["spk_id"] == utt.rpartition("_")[0]
            assert k_row["ID"].rpartition("_")[0] == utt
            assert k_row["gender"] in ("m", "f")
            wav = Path(k_row["wav"].replace("{data_root}", str(tiny_prepared)))
            if wav not in infos:
                infos[wav] = sf.info(str(wav))
            info = infos[wav]
            assert (info.samplerate, info.channels) == (8000, 1)
            assert info.subtype == "PCM_16"
            assert 0 <= start < stop <= info.frames


def test_splits_are_disjoint(tiny_prepared: Path):
    rows = {n: read_csv(tiny_prepared / f"{n}.csv") for n in SPLIT_NAMES}
    spks = {n: {r["spk_id"] for r in rows[n]} for n in SPLIT_NAMES}
    utts = {n: {stem(r) for r in rows[n]} for n in SPLIT_NAMES}
    assert not spks["test"] & (spks["train"] | spks["valid"])
    assert not utts["train"] & utts["valid"]
    assert spks["valid"] == spks["train"]  # each speaker keeps a valid utt
    assert all("/wavs/test/" in r["wav"] for r in rows["test"])
    ids = [r["ID"] for n in SPLIT_NAMES for r in rows[n]]
    assert len(ids) == len(set(ids))


SPLIT_NAMES = ("train", "valid", "test")


def test_trials_file(tiny_prepared: Path):
    test_rows = read_csv(tiny_prepared / "test.csv")
    utt2spk = {stem(r): r["spk_id"] for r in test_rows}
    lines = (tiny_prepared / "trials.txt").read_text().splitlines()
    trials = [(int(a), b, c) for a, b, c in (line.split() for line in lines)]
    assert trials
    assert sum(t[0] for t in trials) * 2 == len(trials)
    covered = {utt2spk[u] for _, a, b in trials for u in (a, b)}
    assert covered == set(utt2spk.values())
    assert len({frozenset(t[1:]) for t in trials}) == len(trials)
    for label, a, b in trials:
        assert label == int(utt2spk[a] == utt2spk[b]) and a != b
    assert trials == make_trials(utt2spk, len(trials), seed=1)


def test_calibration_split_holds_out_unseen_speakers(tmp_path: Path):
    # 15 training speakers: a fifth of them, 3, are held out (6 asked)
    corpus = make_corpus(
        tmp_path / "vivos",
        {
            "train": {f"SPK{i:02d}": [1.5, 1.5, 1.5] for i in range(15)},
            "test": {"DEVA": [1.5, 1.5], "DEVB": [1.5, 1.5]},
        },
    )
    summary = prepare_vivos(corpus, tmp_path / "prep", seed=3)
    assert summary["speakers"]["cal"] == 3
    rows = {
        n: read_csv(tmp_path / "prep" / f"{n}.csv")
        for n in ("train", "valid", "cal", "test")
    }
    spks = {n: {r["spk_id"] for r in rows[n]} for n in rows}
    assert len(spks["cal"]) == 3 and len(spks["train"]) == 12
    # never trained on, never validated on, not test speakers
    assert not spks["cal"] & (spks["train"] | spks["valid"] | spks["test"])
    # both genders of the corpus (make_corpus alternates them)
    gender = {r["spk_id"]: r["gender"] for r in rows["cal"]}
    assert set(gender.values()) == {"m", "f"}
    utt2spk = {stem(r): r["spk_id"] for r in rows["cal"]}
    lines = (tmp_path / "prep" / "cal_trials.txt").read_text().splitlines()
    trials = [(int(a), b, c) for a, b, c in (x.split() for x in lines)]
    assert trials and sum(t[0] for t in trials) * 2 == len(trials)
    for label, a, b in trials:
        assert label == int(utt2spk[a] == utt2spk[b])

    # cal_speakers=0: every speaker trains; the files exist, empty
    summary = prepare_vivos(corpus, tmp_path / "none", seed=3, cal_speakers=0)
    assert "cal" not in summary["speakers"]
    assert summary["speakers"]["train"] == 15
    assert read_csv(tmp_path / "none" / "cal.csv") == []
    assert (tmp_path / "none" / "cal_trials.txt").read_text() == ""


def test_too_few_speakers_hold_none_out(tiny_prepared: Path):
    # 4 training speakers: a fifth is below MIN_CAL_SPEAKERS
    summary = json.loads((tiny_prepared / "prep_summary.json").read_text())
    assert "cal" not in summary["speakers"]
    assert summary["speakers"]["train"] == 4
    assert read_csv(tiny_prepared / "cal.csv") == []


# --------------------------------------------------------------------------
# Hand-made corpora: trimming, idempotency, interruption, bad input
# --------------------------------------------------------------------------


def test_trimming_removes_known_silence(small_corpus: Path, tmp_path: Path):
    save = tmp_path / "prep"
    prepare_vivos(small_corpus, save, trim_margin=0.1, num_trials=20)
    for spk, tones in SMALL["train"].items():
        for u_idx, tone_s in enumerate(tones, start=1):
            wav = save / "wavs" / "train" / spk / f"{spk}_R{u_idx:03d}.wav"
            info = sf.info(str(wav))
            assert info.samplerate == 8000 and info.channels == 1
            # 1 s of silence on each side is gone, a 0.1 s margin is kept
            assert abs(info.duration - (tone_s + 0.2)) < 0.03, wav.name
    summary = (save / "prep_summary.json").read_text()
    assert '"skipped": 0' in summary


def _mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_idempotent_and_redone_on_change(
    small_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    save = tmp_path / "prep"
    first = prepare_vivos(small_corpus, save, num_trials=20)
    before = _mtimes(save)
    assert "options.json" in before and "trials.txt" in before
    with caplog.at_level(logging.INFO, logger="deep_speaker_sb"):
        again = prepare_vivos(small_corpus, save, num_trials=20)
    assert "already prepared, skipping" in caplog.text
    assert _mtimes(save) == before
    assert again == first

    # a manifest option changed: manifests redone, cached WAVs reused
    prepare_vivos(small_corpus, save, num_trials=20, seg_dur=2.0)
    after = _mtimes(save)
    assert after["train.csv"] != before["train.csv"]
    wavs = [k for k in before if k.endswith(".wav")]
    assert wavs and all(after[k] == before[k] for k in wavs)
    assert max(float(r["duration"]) for r in read_csv(save / "train.csv")) == 2

    # an audio option changed: the WAVs are remade
    prepare_vivos(small_corpus, save, num_trials=20, sample_rate=16000)
    wav = next(save.rglob("*.wav"))
    assert sf.info(str(wav)).samplerate == 16000


def test_interrupted_write_leaves_no_partial_file(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    save = tmp_path / "prep"
    real_write = prep.write_manifest

    def failing_write(path, rows):
        if Path(path).name != "train.csv":
            return real_write(path, rows)

        def some_rows_then_fail():
            for i, row in enumerate(rows):
                if i == 2:
                    raise OSError("disk full (simulated)")
                yield row

        return real_write(path, some_rows_then_fail())

    monkeypatch.setattr(prep, "write_manifest", failing_write)
    with pytest.raises(OSError, match="simulated"):
        prepare_vivos(small_corpus, save, num_trials=20)
    names = {p.name for p in save.iterdir()}
    assert "train.csv" not in names and "options.json" not in names
    assert not [n for n in names if n.endswith(".tmp")]

    monkeypatch.setattr(prep, "write_manifest", real_write)
    summary = prepare_vivos(small_corpus, save, num_trials=20)
    assert summary["utterances"]["train"] + summary["utterances"]["valid"] == 5
    assert (save / "train.csv").is_file() and (save / "options.json").is_file()


def test_full_disk_stops_and_marks_nothing_prepared(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    save = tmp_path / "prep"
    real_open = wave.open
    written = []

    def full_disk_open(f, mode=None):
        w = real_open(f, mode)
        if mode == "wb":
            written.append(f)
            if len(written) == 3:  # the third cached WAV: disk full

                def write_half(data):
                    w.writeframesraw(data[: len(data) // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                w.writeframes = write_half
        return w

    monkeypatch.setattr(wave, "open", full_disk_open)
    with pytest.raises(OutputError, match="No space left on device") as info:
        prepare_vivos(small_corpus, save, num_trials=20)
    assert isinstance(info.value, OSError)
    failed = Path(written[2]).name.split(".wav")[0] + ".wav"
    assert failed in str(info.value) and "ENOSPC" in str(info.value)
    assert not (save / "options.json").exists()
    assert not list(save.rglob(failed)) and not list(save.rglob("*.tmp"))

    monkeypatch.setattr(wave, "open", real_open)
    summary = prepare_vivos(small_corpus, save, num_trials=20)
    assert summary["skipped"] == 0
    assert summary["utterances"]["train"] + summary["utterances"]["valid"] == 5
    assert summary["utterances"]["test"] == 4
    assert (save / "options.json").is_file()


def test_missing_cached_wav_is_rebuilt(
    tiny_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    save = tmp_path / "prep"
    first = prepare_vivos(tiny_corpus, save, num_trials=20)
    wavs = sorted(save.rglob("*.wav"))
    gone = wavs[len(wavs) // 2]
    gone.unlink()
    before = _mtimes(save)
    with caplog.at_level(logging.INFO, logger="deep_speaker_sb"):
        again = prepare_vivos(tiny_corpus, save, num_trials=20)
    assert "already prepared" not in caplog.text
    assert "missing" in caplog.text and str(gone) in caplog.text
    assert gone.is_file()
    after = _mtimes(save)
    kept = [k for k in before if k.endswith(".wav")]
    assert kept and all(after[k] == before[k] for k in kept)  # reused
    assert again["segments"] == first["segments"]
    for name in ("train.csv", "valid.csv", "test.csv"):
        for row in read_manifest(save / name, data_root=save):
            assert Path(row.wav).is_file(), row.wav


def test_bad_input_is_skipped_or_converted(tmp_path: Path):
    root = make_corpus(tmp_path / "vivos", SMALL)
    waves = root / "train" / "waves" / "SPKA"
    # broken or useless files
    (waves / "SPKA_BAD1.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (waves / "SPKA_BAD2.wav").write_bytes(b"")
    sf.write(waves / "SPKA_EMPTY.wav", np.zeros(0), SR_IN)
    sf.write(waves / "SPKA_SHORT.wav", framed_tone(0.5), SR_IN)
    sf.write(waves / "SPKA_ZERO.wav", np.zeros(3 * SR_IN), SR_IN)
    # files to convert
    stereo = np.stack([framed_tone(2.0), framed_tone(2.0, seed=9)], axis=1)
    sf.write(waves / "SPKA_STEREO.wav", stereo, SR_IN)
    sf.write(waves / "SPKA_22K.wav", framed_tone(2.0, sr=22050), 22050)
    # a speaker without gender, a WAV without prompt, a prompt without WAV
    other = root / "train" / "waves" / "SPKC"
    other.mkdir()
    sf.write(other / "SPKC_R001.wav", framed_tone(2.0), SR_IN)
    sf.write(other / "SPKC_R002.wav", framed_tone(2.0), SR_IN)
    with open(root / "train" / "prompts.txt", "a", encoding="utf-8") as f:
        f.write("SPKC_R001 MỘT\nSPKA_R099 KHÔNG CÓ FILE\n")
    # a train speaker among the test ones, a name that is not <SPK>_<UTT>
    (root / "test" / "waves" / "SPKA").mkdir()
    sf.write(root / "test/waves/SPKA/SPKA_T001.wav", framed_tone(2.0), SR_IN)
    sf.write(root / "test/waves/DEVA/NOSPEAKER.wav", framed_tone(2.0), SR_IN)

    save = tmp_path / "prep"
    summary = prepare_vivos(root, save, num_trials=20)
    reasons = {r["utt_id"]: r["reason"] for r in read_csv(save / "skipped.csv")}
    assert reasons["SPKA_BAD1"].startswith("unreadable")
    assert reasons["SPKA_BAD2"].startswith("unreadable")
    assert reasons["SPKA_EMPTY"].startswith("empty")
    assert reasons["SPKA_SHORT"].startswith("too short after trimming")
    assert reasons["SPKA_ZERO"].startswith("silent")
    assert reasons["SPKA_R099"] == "prompt without wav"
    assert reasons["SPKA_T001"].startswith("test speaker also in train")
    assert reasons["NOSPEAKER"].startswith("bad utterance id")
    assert len(reasons) == summary["skipped"] == 8
    test_spks = {r["spk_id"] for r in read_csv(save / "test.csv")}
    assert test_spks == {"DEVA", "DEVB"}
    assert not list(save.rglob("SPKA_BAD1.wav"))

    rows = read_csv(save / "train.csv") + read_csv(save / "valid.csv")
    by_utt = {stem(r): r for r in rows}
    for utt in ("SPKA_STEREO", "SPKA_22K"):
        wav = save / "wavs" / "train" / "SPKA" / f"{utt}.wav"
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels) == (8000, 1)
        assert abs(info.duration - 2.2) < 0.03
        assert utt in by_utt
    assert summary["converted"] == {"downmixed": 1, "other_sample_rate": 1}
    assert by_utt["SPKC_R001"]["gender"] == "unknown"
    assert by_utt["SPKC_R001"]["words"] == "MỘT"
    assert by_utt["SPKC_R002"]["words"] == ""
    assert summary["speakers_without_gender"] == ["SPKC"]
    assert summary["wavs_without_prompt"] == 3  # STEREO, 22K, SPKC_R002


def test_bad_options_raise(small_corpus: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="min_dur"):
        prepare_vivos(small_corpus, tmp_path / "p", seg_dur=1.0, min_dur=2.0)
    with pytest.raises(ConfigError, match="num_workers"):
        prepare_vivos(small_corpus, tmp_path / "p", num_workers=0)
    with pytest.raises(ConfigError, match="cal_speakers must be >= 0"):
        prepare_vivos(small_corpus, tmp_path / "p", cal_speakers=-1)
    # non-finite values passed the range checks and ended in a traceback
    for option in ("trim_db", "trim_margin", "seg_dur"):
        for bad in (math.nan, math.inf):
            with pytest.raises(ConfigError, match=f"{option} must be finite"):
                prepare_vivos(small_corpus, tmp_path / "p", **{option: bad})
    with pytest.raises(DataError, match="not a VIVOS folder"):
        prepare_vivos(small_corpus / "train", tmp_path / "p")
    with pytest.raises(MissingFileError, match="not found"):
        prepare_vivos(tmp_path / "nope", tmp_path / "p")
    assert not (tmp_path / "p").exists()
    # never empties a wavs/ folder that the preparation did not make
    (tmp_path / "mine" / "wavs").mkdir(parents=True)
    (tmp_path / "mine" / "wavs" / "keep.wav").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not made by"):
        prepare_vivos(small_corpus, tmp_path / "mine")
    assert (tmp_path / "mine" / "wavs" / "keep.wav").is_file()


def test_vivos_defaults_are_prep_options_defaults():
    """prepare_vivos, data_prep.py and softmax.yaml (which prepares the
    same folder) prepare VIVOS with PrepOptions's defaults: another value
    in one of them would prepare the folder again with other options."""
    default = PrepOptions()
    params = inspect.signature(prepare_vivos).parameters
    data_prep = load_script("data_prep.py")
    args = data_prep.parse_args(["--data_folder", "d", "--prep_folder", "s"])
    assert data_prep.DEFAULT_RATES["vivos"] == default.sample_rate
    text = (ROOT / "hparams" / "softmax.yaml").read_text(encoding="utf-8")
    in_yaml = {"seed": "prep_seed", "num_workers": "prep_workers"}
    for field in dataclasses.fields(PrepOptions):
        value = getattr(default, field.name)
        assert params[field.name].default == value, field.name
        if field.name != "sample_rate":
            flag = in_yaml.get(field.name, field.name)  # --prep_seed, ...
            assert getattr(args, flag) == value, field.name
        key = in_yaml.get(field.name, field.name)
        found = re.search(rf"^{key}: *([^#\n]+)", text, re.M)
        if field.name not in ("trim_db", "trim_margin"):  # not in the YAML
            assert yaml.safe_load(found[1]) == value, key


# --------------------------------------------------------------------------
# The corpus-neutral core, given a listing made here (no VIVOS layout)
# --------------------------------------------------------------------------


def folder_corpus(root: Path) -> list[SourceUtterance]:
    """``root/<speaker>/<n>.flac``: two train and two test speakers; bob
    has no known gender and records at 8 kHz."""
    speakers = {
        "alice": ("train", "f", 16000),
        "bob": ("train", None, 8000),
        "carol": ("test", "f", 16000),
        "dave": ("test", "m", 16000),
    }
    utts = []
    for s_idx, (spk, (split, gender, sr)) in enumerate(speakers.items()):
        (root / spk).mkdir(parents=True)
        n_utts = 4 if split == "train" else 2
        for k in range(n_utts):
            src = root / spk / f"{k}.flac"
            x = framed_tone(4.0, 0.5, sr=sr, freq=200 + 60 * s_idx, seed=k)
            sf.write(src, x, sr)
            utts.append(
                SourceUtterance(split, f"{spk}-{k}", spk, str(src), gender, "")
            )
    return utts


def test_core_prepares_a_listing_of_any_corpus(tmp_path: Path):
    corpus = tmp_path / "corpus"
    utts = folder_corpus(corpus)
    broken = corpus / "alice" / "broken.flac"
    broken.write_bytes(b"not audio at all")
    utts.append(SourceUtterance("train", "alice-x", "alice", str(broken)))
    not_audio = Skipped(str(corpus / "README"), "README", "not audio: text")
    calls = []

    def list_folders(folder: Path) -> Listing:
        calls.append(folder)
        return Listing(utts, native_rate=16000, skipped=[not_audio])

    save = tmp_path / "prep"
    options = PrepOptions(num_trials=4, seg_dur=3.0, min_dur=1.0, seed=5)
    summary = prepare_corpus(corpus, list_folders, save, options)
    assert calls == [corpus.resolve()]

    assert summary["speakers"] == {"train": 2, "valid": 2, "test": 2}
    assert summary["utterances"]["train"] + summary["utterances"]["valid"] == 8
    assert summary["utterances"]["test"] == 4
    # 4.0 s of tone + 2 x 0.1 s of margin: one 3 s and one 1.2 s segment
    assert summary["segments"]["test"] == 8
    assert summary["converted"] == {"downmixed": 0, "other_sample_rate": 4}
    assert summary["speakers_without_gender"] == ["bob"]
    assert summary["wavs_without_prompt"] == 0

    train = read_manifest(save / "train.csv") + read_manifest(
        save / "valid.csv"
    )
    test = read_manifest(save / "test.csv")
    assert {r.spk_id for r in train} == {"alice", "bob"}
    assert {r.spk_id for r in test} == {"carol", "dave"}
    assert sorted({r.utt_id for r in test}) == [
        "carol-0",
        "carol-1",
        "dave-0",
        "dave-1",
    ]
    for row in train + test:
        assert round(row.duration, 1) in (3.0, 1.2)
        assert row.stop - row.start == round(row.duration * 8000)
        assert sf.info(row.wav).samplerate == 8000
        assert row.gender == {"bob": "unknown", "dave": "m"}.get(
            row.spk_id, "f"
        )
    raw = read_csv(save / "test.csv")
    assert raw[0]["wav"] == "{data_root}/wavs/test/carol/carol-0.wav"

    reasons = {r["utt_id"]: r["reason"] for r in read_csv(save / "skipped.csv")}
    assert reasons["README"] == "not audio: text"
    assert reasons["alice-x"].startswith("unreadable")
    assert summary["skipped_by_reason"] == {"not audio": 1, "unreadable": 1}
    utt2spk = {r.utt_id: r.spk_id for r in test}
    lines = (save / "trials.txt").read_text().splitlines()
    assert len(lines) == 4
    for label, a, b in (line.split() for line in lines):
        assert int(label) == int(utt2spk[a] == utt2spk[b])

    # the second run skips before listing the corpus again
    assert prepare_corpus(corpus, list_folders, save, options) == summary
    assert len(calls) == 1


def test_core_refuses_an_empty_split_and_bad_listings(tmp_path: Path):
    utts = folder_corpus(tmp_path / "corpus")
    train_only = [u for u in utts if u.split == "train"]
    with pytest.raises(DataError, match="no usable test utterance"):
        prepare_corpus(
            tmp_path / "corpus",
            lambda folder: Listing(train_only, native_rate=16000),
            tmp_path / "prep",
            PrepOptions(),
        )
    assert (tmp_path / "prep" / "skipped.csv").is_file()
    assert not (tmp_path / "prep" / "options.json").exists()
    dev = SourceUtterance("dev", "a-1", "a", "a.wav")
    with pytest.raises(ValueError, match="split 'dev'"):
        Listing([dev], native_rate=16000)
    with pytest.raises(ValueError, match="listed twice"):
        Listing([utts[0], utts[0]], native_rate=16000)


def test_list_vivos_gives_prompts_genders_and_skips(small_corpus: Path):
    sf.write(
        small_corpus / "train/waves/SPKB/SPKB_NEW.wav", framed_tone(2.0), SR_IN
    )
    with open(small_corpus / "test/prompts.txt", "a", encoding="utf-8") as f:
        f.write("DEVA_R009 KHÔNG CÓ FILE\n")
    listing = list_vivos(small_corpus)
    by_id = {u.utt_id: u for u in listing.utterances}
    assert listing.native_rate == 16000
    assert len(by_id) == 10
    assert by_id["SPKA_R001"].words == "XIN CHÀO 1"
    assert by_id["SPKA_R001"].gender == "m"
    assert by_id["SPKB_NEW"].words is None
    assert by_id["DEVB_R002"].split == "test"
    assert by_id["DEVB_R002"].src.endswith("test/waves/DEVB/DEVB_R002.wav")
    assert [(s.utt_id, s.reason) for s in listing.skipped] == [
        ("DEVA_R009", "prompt without wav")
    ]


def test_odd_files_and_symlinked_speaker_folders(tmp_path: Path):
    root = make_corpus(tmp_path / "vivos", SMALL)
    waves = root / "train" / "waves"
    # a dangling symlink and a folder named *.wav: skipped, not fatal
    (waves / "SPKA" / "SPKA_GONE.wav").symlink_to(tmp_path / "nowhere.wav")
    (waves / "SPKA" / "SPKA_DIR.wav").mkdir()
    # a speaker folder that is a symlink (holding a symlink cycle)
    elsewhere = make_corpus(tmp_path / "elsewhere", {"train": {"SPKD": [2.0]}})
    (waves / "SPKD").symlink_to(elsewhere / "train" / "waves" / "SPKD")
    (waves / "SPKD" / "loop").symlink_to(waves, target_is_directory=True)
    with open(root / "train" / "prompts.txt", "a", encoding="utf-8") as f:
        f.write("SPKD_R001 MỘT HAI\n")

    save = tmp_path / "prep"
    summary = prepare_vivos(root, save, num_trials=20)
    reasons = {r["utt_id"]: r["reason"] for r in read_csv(save / "skipped.csv")}
    assert reasons == {
        "SPKA_GONE": "not a file: a dangling symlink",
        "SPKA_DIR": "not a file: a folder",
    }
    assert summary["skipped"] == 2
    rows = read_csv(save / "train.csv") + read_csv(save / "valid.csv")
    spkd = [r for r in rows if r["spk_id"] == "SPKD"]
    assert {stem(r) for r in spkd} == {"SPKD_R001"}  # listed once
    assert spkd[0]["words"] == "MỘT HAI"
    assert summary["utterances"]["train"] + summary["utterances"]["valid"] == 6


def test_genders_and_prompt_encodings(
    small_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    train = small_corpus / "train"
    # a bare speaker line keeps the known gender (it wrote '' before)
    (train / "genders.txt").write_text("SPKA m\nSPKA\nSPKB\n")
    # UTF-16 prompts (with a byte-order mark) are decoded, with a warning
    text = (train / "prompts.txt").read_text(encoding="utf-8")
    (train / "prompts.txt").write_text(text, encoding="utf-16")
    with caplog.at_level(logging.WARNING, logger="deep_speaker_sb"):
        listing = list_vivos(small_corpus)
    assert "UTF-16" in caplog.text and "SPKB has no gender" in caplog.text
    by_id = {u.utt_id: u for u in listing.utterances}
    assert by_id["SPKA_R001"].words == "XIN CHÀO 1"
    assert by_id["SPKA_R002"].gender == "m"
    assert by_id["SPKB_R001"].gender is None  # 'unknown' in the manifest
    assert not listing.skipped

    # Latin-1 (or Windows-1258) cannot be told apart: one clear error
    test_prompts = small_corpus / "test" / "prompts.txt"
    test_prompts.write_bytes(b"DEVA_R001 CAF\xc9 S\xc0I G\xd2N\n")
    with pytest.raises(DataError, match="not UTF-8 .line 1: byte 0xC9"):
        prepare_vivos(small_corpus, tmp_path / "prep")
    assert not (tmp_path / "prep" / "options.json").exists()


def _source_seconds(corpus: Path, wavs: list[Path]) -> float:
    """Seconds of the corpus WAVs that ``wavs`` (cached copies) convert."""
    return sum(
        sf.info(str(corpus / w.parents[1].name / "waves" / w.parent.name /
                    w.name)).duration
        for w in wavs
    )  # fmt: skip


def test_killed_run_leftovers_and_resumed_speed(
    small_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    save = tmp_path / "prep"
    first = prepare_vivos(small_corpus, save, num_trials=20)
    assert first["reused_from_cache"] == 0
    assert first["realtime_factor"] is not None
    # what was converted, from the data (no timing: never depends on how
    # fast the machine is)
    every = sorted((save / "wavs").rglob("*.wav"))
    assert first["converted_seconds"] == pytest.approx(
        _source_seconds(small_corpus, every), abs=1e-3
    )
    # a kill leaves temporary files and no options.json
    leftovers = [
        save / ".train.csv.k1ll3d.tmp",
        save / ".prep_summary.json.abc.tmp",
        save / "wavs" / "train" / "SPKA" / "SPKA_R001.wav.4242.tmp",
    ]
    for path in leftovers:
        path.write_text("half")
    (save / "options.json").unlink()
    gone = sorted((save / "wavs" / "train").rglob("*.wav"))[:2]
    for wav in gone:
        wav.unlink()
    again = prepare_vivos(small_corpus, save, num_trials=20)
    assert not [p for p in leftovers if p.exists()]
    assert not list(save.rglob("*.tmp"))
    # the speed counts the two converted utterances only, not the cache
    assert again["reused_from_cache"] == 9 - 2
    assert again["converted_seconds"] == pytest.approx(
        _source_seconds(small_corpus, gone), abs=1e-3
    )
    assert again["realtime_factor"] is not None
    # all reused: no speed to report (it logged "(None x real time)")
    (save / "options.json").unlink()
    with caplog.at_level(logging.INFO, logger="deep_speaker_sb"):
        third = prepare_vivos(small_corpus, save, num_trials=20)
    assert third["reused_from_cache"] == 9
    assert third["converted_seconds"] == 0
    assert third["realtime_factor"] is None
    assert "converted nothing, 9 utterances reused" in caplog.text
    assert "None" not in caplog.text


def test_moved_prepared_folder_names_its_new_place(
    small_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    old = tmp_path / "prep"
    prepare_vivos(small_corpus, old, num_trials=20)
    new = tmp_path / "moved"
    old.rename(new)
    with caplog.at_level(logging.INFO, logger="deep_speaker_sb"):
        summary = prepare_vivos(small_corpus, new, num_trials=20)
    assert "already prepared, skipping" in caplog.text
    assert summary["save_folder"] == str(new.resolve())
    assert summary["files"]["train.csv"] == str((new / "train.csv").resolve())
    # what data_prep.py prints: the new folder only
    text = load_script("data_prep.py").report(summary)
    assert str(new.resolve()) in text and str(old) not in text


def test_duplicate_prompt_and_gender_lines(
    small_corpus: Path, caplog: pytest.LogCaptureFixture
):
    train = small_corpus / "train"
    prompts = train / "prompts.txt"
    prompts.write_text(
        prompts.read_text(encoding="utf-8")
        + "SPKA_R001 XIN CHÀO 1\n"  # the same again: fine
        + "SPKA_R002 SOMETHING ELSE\n",  # a conflict: the last won
        encoding="utf-8",
    )
    (train / "genders.txt").write_text("SPKA m\nSPKB f\nSPKA f\nSPKB f\n")
    with caplog.at_level(logging.WARNING, logger="deep_speaker_sb"):
        listing = list_vivos(small_corpus)
    by_id = {u.utt_id: u for u in listing.utterances}
    assert by_id["SPKA_R001"].words == "XIN CHÀO 1"
    assert by_id["SPKA_R002"].words == "XIN CHÀO 2"  # the first line
    assert by_id["SPKA_R001"].gender == "m"
    assert by_id["SPKB_R001"].gender == "f"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert "SPKA_R002 is on line 2" in warnings[0]
    assert "again on line 7" in warnings[0] and "kept line 2" in warnings[0]
    assert "line 3: speaker SPKA is 'f' here but 'm'" in warnings[1]
    assert "kept 'm'" in warnings[1]


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "not_vivos"])
def test_cli_error_is_one_line(tmp_path: Path, kind: str):
    folder = tmp_path / "nope"
    if kind == "not_vivos":
        (folder / "train").mkdir(parents=True)
    proc = run_script(
        "data_prep.py", "--data_folder", folder, "--prep_folder", tmp_path
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(folder) in lines[0]


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_cli_prep_folder_not_a_folder_is_one_line(
    tiny_corpus: Path, tmp_path: Path, kind: str
):
    a_file = tmp_path / "prep"
    a_file.write_text("not a folder")
    save = a_file if kind == "file" else a_file / "sub"
    proc = run_script(
        "data_prep.py", "--data_folder", tiny_corpus, "--prep_folder", save
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(a_file) in lines[-1]
    assert a_file.read_text() == "not a folder"


def test_cli_prepares_and_prints(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    data_prep = load_script("data_prep.py")
    save = tmp_path / "prep"
    argv = ["--data_folder", str(small_corpus), "--prep_folder", str(save)]
    argv += ["--prep_workers", "2", "--num_trials", "20"]
    assert run_cli(lambda: data_prep.main(argv)) == 0
    out = capsys.readouterr().out
    assert str(save.resolve() / "train.csv") in out
    assert "test :    2 speakers" in out
    assert (save / "trials.txt").is_file()
