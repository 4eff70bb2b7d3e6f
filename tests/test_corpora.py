"""Tests of the corpus listers (``data_prep.py --corpus NAME``).

Each test builds a miniature tree in the real naming pattern of its
corpus (a few speakers, short generated voices of
:mod:`deep_speaker_sb.data.synthetic`, FLAC where the corpus uses FLAC,
stereo and other rates for ``folders``), runs the preparation and checks
the manifests against what the test wrote: speakers and utterances per
split, and the trials (official lists as given, in their order; an error
naming the first file a list names that the corpus lacks).
"""

from __future__ import annotations

import os
import stat
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.data.cnceleb import prepare_cnceleb
from deep_speaker_sb.data.folders import prepare_folders
from deep_speaker_sb.data.librispeech import prepare_librispeech
from deep_speaker_sb.data.prep import PrepOptions
from deep_speaker_sb.data.synthetic import make_voice, synthesize_utterance
from deep_speaker_sb.data.vietnam_celeb import prepare_vietnam_celeb
from deep_speaker_sb.data.voxceleb import prepare_voxceleb
from deep_speaker_sb.dataio import read_manifest
from deep_speaker_sb.errors import ConfigError, DataError
from deep_speaker_sb.scoring import read_trials
from tests.conftest import ROOT, load_script, run_script

OPTIONS = PrepOptions(sample_rate=16000, num_trials=40)


def write_voice(
    path: Path,
    speaker: str,
    k: int,
    sr: int = 16000,
    channels: int = 1,
) -> Path:
    """A generated utterance ``k`` of ``speaker`` (its own voice) at
    ``path``; the format follows the suffix (.wav, .flac, .m4a: WAV)."""
    seed = [sum(map(ord, speaker)), len(speaker)]
    voice = make_voice(np.random.default_rng(seed))
    wav, _ = synthesize_utterance(voice, np.random.default_rng([*seed, k]), sr)
    data = np.stack([wav, 0.5 * wav], axis=1) if channels == 2 else wav
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "FLAC" if path.suffix == ".flac" else "WAV"
    sf.write(path, data, sr, format=fmt)
    return path


def manifests(save: Path) -> dict[str, dict[str, set[str]]]:
    """``{split: {speaker: {utterance ids}}}`` of the prepared manifests."""
    out: dict[str, dict[str, set[str]]] = {}
    for split in ("train", "valid", "test"):
        by_spk: dict[str, set[str]] = {}
        for row in read_manifest(save / f"{split}.csv"):
            by_spk.setdefault(row.spk_id, set()).add(row.utt_id)
        out[split] = by_spk
    return out


def skipped(save: Path) -> dict[str, str]:
    """``{utt_id: reason}`` of ``skipped.csv``."""
    lines = (save / "skipped.csv").read_text(encoding="utf-8").splitlines()
    return {
        line.split(",")[1]: line.split(",", 2)[2] for line in lines[1:] if line
    }


def check_drawn_trials(save: Path, test: dict[str, set[str]]) -> None:
    """Drawn trials: over test utterances, labels true, half target."""
    spk_of = {u: s for s, utts in test.items() for u in utts}
    trials = read_trials(save / "trials.txt")
    assert trials
    assert all((spk_of[a] == spk_of[b]) == bool(t) for t, a, b in trials)
    assert 2 * sum(t for t, _, _ in trials) == len(trials)


# --------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 speakers, nested folders, WAV and FLAC, stereo, 8/22.05/44.1 kHz."""
    root = tmp_path_factory.mktemp("folders") / "mine"
    write_voice(root / "Nguyễn Văn A" / "day 1" / "a.wav", "A", 0)
    write_voice(root / "Nguyễn Văn A" / "day 2" / "x" / "b.flac", "A", 1)
    write_voice(root / "Nguyễn Văn A" / "c.wav", "A", 2, sr=8000)
    for k in range(3):
        write_voice(root / "bob" / f"{k}.flac", "bob", k, 44100, channels=2)
        write_voice(root / "carol" / f"{k}.wav", "carol", k, sr=22050)
        write_voice(root / "dave" / "s" / f"{k}.wav", "dave", k)
    (root / "dave" / "notes.txt").write_text("not audio")
    return root


def test_folders_count(own_root: Path, tmp_path: Path):
    summary = prepare_folders(own_root, tmp_path, OPTIONS, test_speakers=2)
    m = manifests(tmp_path)
    spks = {"Nguyễn_Văn_A", "bob", "carol", "dave"}
    assert len(m["test"]) == 2
    assert set(m["train"]) | set(m["test"]) == spks
    assert set(m["train"]) == set(m["valid"]) == spks - set(m["test"])
    every = {u for part in m.values() for utts in part.values() for u in utts}
    assert len(every) == 12
    assert {"Nguyễn_Văn_A-day_1-a", "Nguyễn_Văn_A-day_2-x-b"} <= every
    assert "dave-s-0" in every
    # bob's 3 files are stereo; bob, carol and A's c.wav are not 16 kHz
    assert summary["converted"] == {"downmixed": 3, "other_sample_rate": 7}
    check_drawn_trials(tmp_path, m["test"])
    # the same seed draws the same speakers
    again = tmp_path / "again"
    prepare_folders(own_root, again, OPTIONS, test_speakers="2")
    assert set(manifests(again)["test"]) == set(m["test"])


def test_folders_list_and_test_folder(own_root: Path, tmp_path: Path):
    ids = tmp_path / "test_ids.txt"
    ids.write_text("bob\ncarol\n")
    prepare_folders(own_root, tmp_path / "a", OPTIONS, test_speakers=ids)
    m = manifests(tmp_path / "a")
    assert set(m["test"]) == {"bob", "carol"}
    assert m["test"]["bob"] == {"bob-0", "bob-1", "bob-2"}
    extra = tmp_path / "extra"
    for k in range(2):
        write_voice(extra / "erin" / f"{k}.flac", "erin", k)
        write_voice(extra / "frank" / f"{k}.wav", "frank", k)
        write_voice(extra / "bob" / f"{k}.flac", "bob", k + 5)
    prepare_folders(own_root, tmp_path / "b", OPTIONS, test_folder=extra)
    m = manifests(tmp_path / "b")
    assert set(m["test"]) == {"erin", "frank"}
    assert len(m["train"]) == 4
    assert skipped(tmp_path / "b")["bob-0"].startswith("test speaker also")


def test_folders_mistakes(own_root: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="--test_speakers"):
        prepare_folders(own_root, tmp_path, OPTIONS)
    for n in (1, 4):
        with pytest.raises(ConfigError, match="between 2 .* and 3"):
            prepare_folders(own_root, tmp_path, OPTIONS, test_speakers=n)
    ids = tmp_path / "ids.txt"
    ids.write_text("bob\nzoe\n")
    with pytest.raises(DataError, match="speaker zoe"):
        prepare_folders(own_root, tmp_path, OPTIONS, test_speakers=ids)


# --------------------------------------------------------------------------
# VoxCeleb
# --------------------------------------------------------------------------


def vox_tree(root: Path) -> dict[str, list[str]]:
    """VoxCeleb1 as distributed: dev and test folders; returns the test
    files by speaker (``id/video/n.wav``)."""
    for spk in ("id10001", "id10002", "id10003"):
        for video, n in (("1zcIwhmdeo4", 1), ("7gWzIy6yIIk", 2)):
            key = f"{spk}/{video}/{n:05d}.wav"
            write_voice(root / "vox1_dev_wav" / "wav" / key, spk, n)
    test = {}
    for spk in ("id10270", "id10271"):
        test[spk] = [f"{spk}/5r0dWxy17C8/{n:05d}.wav" for n in (1, 2, 3)]
        for k, key in enumerate(test[spk]):
            write_voice(root / "vox1_test_wav" / "wav" / key, spk, k)
    return test


VERI_TEST = [
    "1 id10270/5r0dWxy17C8/00001.wav id10270/5r0dWxy17C8/00002.wav",
    "0 id10270/5r0dWxy17C8/00001.wav id10271/5r0dWxy17C8/00001.wav",
    "1 id10271/5r0dWxy17C8/00002.wav id10271/5r0dWxy17C8/00001.wav",
    "0 id10271/5r0dWxy17C8/00002.wav id10270/5r0dWxy17C8/00002.wav",
]


@pytest.fixture(scope="module")
def vox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vox") / "voxceleb"
    vox_tree(root)
    (root / "veri_test2.txt").write_text("\n".join(VERI_TEST) + "\n")
    (root / "vox1_meta.csv").write_text(
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
        "id10270\tEartha_Kitt\tf\tUSA\ttest\n"
    )
    return root


def as_ids(line: str) -> tuple[int, str, str]:
    label, a, b = line.split()
    return int(label), *(p[:-4].replace("/", "-") for p in (a, b))


def test_voxceleb_official_trials(vox_root: Path, tmp_path: Path):
    summary = prepare_voxceleb(vox_root, tmp_path, OPTIONS)
    assert read_trials(tmp_path / "trials.txt") == [
        as_ids(t) for t in VERI_TEST
    ]
    assert summary["trials"] == {
        "target": 2,
        "nontarget": 2,
        "official": 4,
        "dropped": 0,
    }
    m = manifests(tmp_path)
    assert m["test"] == {
        "id10270": {"id10270-5r0dWxy17C8-00001", "id10270-5r0dWxy17C8-00002"},
        "id10271": {"id10271-5r0dWxy17C8-00001", "id10271-5r0dWxy17C8-00002"},
    }
    assert set(m["train"]) == {"id10001", "id10002", "id10003"}
    assert summary["utterances"]["train"] + summary["utterances"]["valid"] == 6
    rows = [*read_manifest(tmp_path / "train.csv")]
    rows += read_manifest(tmp_path / "test.csv")
    genders = {r.spk_id: r.gender for r in rows}
    assert genders["id10001"] == "m" and genders["id10270"] == "f"
    assert genders["id10002"] == "unknown"
    # the test speakers' files that the list does not name are left out
    left = skipped(tmp_path)
    assert set(left) == {
        "id10270-5r0dWxy17C8-00003",
        "id10271-5r0dWxy17C8-00003",
    }


def test_voxceleb_single_wav_folder_and_e_list(tmp_path: Path):
    root = tmp_path / "vox"
    test = vox_tree(root)
    (root / "vox1_dev_wav" / "wav").rename(root / "wav")
    for spk in test:  # merged into one wav/
        (root / "vox1_test_wav" / "wav" / spk).rename(root / "wav" / spk)
    e_list = tmp_path / "list_test_all2.txt"
    e_list.write_text(
        "1 id10001/1zcIwhmdeo4/00001.wav id10001/7gWzIy6yIIk/00002.wav\n"
    )
    prepare_voxceleb(root, tmp_path / "p", OPTIONS, trials=e_list)
    m = manifests(tmp_path / "p")
    assert set(m["test"]) == {"id10001"}
    assert set(m["train"]) == {"id10002", "id10003", "id10270", "id10271"}


def test_voxceleb_missing_trial_file_named(vox_root: Path, tmp_path: Path):
    bad = tmp_path / "veri_test2.txt"
    bad.write_text(
        VERI_TEST[0] + "\n"
        "1 id10270/5r0dWxy17C8/00001.wav id10270/zzz/00009.wav\n"
        "1 id10271/yyy/00007.wav id10271/5r0dWxy17C8/00001.wav\n"
    )
    with pytest.raises(DataError) as err:
        prepare_voxceleb(vox_root, tmp_path / "p", OPTIONS, trials=bad)
    assert "line 2 names id10270/zzz/00009.wav" in str(err.value)
    assert not (tmp_path / "p" / "trials.txt").exists()


def test_voxceleb_trial_of_a_skipped_file_dropped(tmp_path: Path):
    root = tmp_path / "vox"
    vox_tree(root)
    (root / "veri_test2.txt").write_text("\n".join(VERI_TEST) + "\n")
    silent = root / "vox1_test_wav/wav/id10270/5r0dWxy17C8/00002.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    summary = prepare_voxceleb(root, tmp_path / "p", OPTIONS)
    kept = [
        as_ids(t) for t in VERI_TEST if "id10270/5r0dWxy17C8/00002" not in t
    ]
    assert read_trials(tmp_path / "p" / "trials.txt") == kept
    assert summary["trials"]["official"] == 4
    assert summary["trials"]["dropped"] == 2
    assert skipped(tmp_path / "p")["id10270-5r0dWxy17C8-00002"].startswith(
        "silent"
    )


def test_voxceleb2_needs_ffmpeg(vox_root: Path, tmp_path: Path, monkeypatch):
    root = tmp_path / "vox"
    vox_tree(root)
    (root / "veri_test2.txt").write_text("\n".join(VERI_TEST) + "\n")
    for k in range(2):
        write_voice(
            root / "dev/aac/id00012/21Uxsk56VDQ" / f"{k:05d}.m4a", "v2", k
        )
    monkeypatch.setenv("PATH", str(tmp_path / "no_programs"))
    data_prep = load_script("data_prep.py")
    argv = ["--corpus", "voxceleb", "--data_folder", str(root)]
    argv += ["--prep_folder", str(tmp_path / "p")]
    with pytest.raises(ConfigError, match="install ffmpeg"):
        data_prep.main(argv)
    # a fake ffmpeg that "decodes" (the .m4a files hold WAV) as ffmpeg does
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, soundfile\n"
        "a = sys.argv\n"
        "x, sr = soundfile.read(a[a.index('-i') + 1], dtype='float32')\n"
        "assert sr == int(a[a.index('-ar') + 1]) and a[-3:] == "
        "['-f', 'f32le', '-']\n"
        "sys.stdout.buffer.write(x.astype('<f4').tobytes())\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    summary = prepare_voxceleb(root, tmp_path / "p", OPTIONS)
    m = manifests(tmp_path / "p")
    assert "id00012" in m["train"]
    assert summary["speakers"]["train"] == 4
    wav = tmp_path / "p/wavs/train/id00012/id00012-21Uxsk56VDQ-00000.wav"
    assert sf.info(wav).samplerate == 16000


# --------------------------------------------------------------------------
# CN-Celeb
# --------------------------------------------------------------------------


CN_TRIALS = [
    "id00800-enroll test/id00800-singing-01-001.wav 1",
    "id00800-enroll test/id00801-vlog-02-003.wav 0",
    "id00801-enroll test/id00801-vlog-02-003.wav 1",
    "id00801-enroll test/id00800-speech-01-002.wav 0",
]


def cn_tree(root: Path) -> None:
    for spk in ("id00000", "id00001", "id00800"):  # id00800: eval speaker
        for k, name in enumerate(("singing-01-001", "speech-02-004")):
            write_voice(root / "data" / spk / f"{name}.flac", spk, k)
    for spk in ("id00800", "id00801"):
        write_voice(root / f"eval/enroll/{spk}-enroll.flac", spk, 9)
    for name in (
        "id00800-singing-01-001",
        "id00800-speech-01-002",
        "id00801-vlog-02-003",
    ):
        write_voice(root / f"eval/test/{name}.flac", name[:7], 3)
    lists = root / "eval" / "lists"
    lists.mkdir(parents=True)
    (lists / "enroll.lst").write_text(
        "id00800-enroll enroll/id00800-enroll.wav\n"
        "id00801-enroll enroll/id00801-enroll.wav\n"
    )
    (lists / "trials.lst").write_text("\n".join(CN_TRIALS) + "\n")


def test_cnceleb_official_trials(tmp_path: Path):
    root = tmp_path / "CN-Celeb_flac"
    cn_tree(root)
    cn2 = tmp_path / "CN-Celeb2_flac"
    write_voice(cn2 / "data/id10000/interview-01-001.flac", "id10000", 0)
    write_voice(cn2 / "data/id10000/interview-01-002.flac", "id10000", 1)
    summary = prepare_cnceleb(
        root, tmp_path / "p", OPTIONS, train_folders=[cn2]
    )
    expected = [
        (int(t[-1]), t.split()[0], t.split()[1][5:-4]) for t in CN_TRIALS
    ]
    assert read_trials(tmp_path / "p" / "trials.txt") == expected
    m = manifests(tmp_path / "p")
    assert m["test"] == {
        "id00800": {
            "id00800-enroll",
            "id00800-singing-01-001",
            "id00800-speech-01-002",
        },
        "id00801": {"id00801-enroll", "id00801-vlog-02-003"},
    }
    assert set(m["train"]) == {"id00000", "id00001", "id10000"}
    assert "id00000-singing-01-001" in m["train"]["id00000"] | m["valid"].get(
        "id00000", set()
    )
    assert summary["utterances"]["test"] == 5
    left = skipped(tmp_path / "p")
    assert left["id00800-singing-01-001"].startswith("test speaker")


def test_cnceleb_missing_file_named(tmp_path: Path):
    root = tmp_path / "cn"
    cn_tree(root)
    (root / "eval/test/id00801-vlog-02-003.flac").unlink()
    with pytest.raises(DataError, match="line 2 names test/id00801-vlog"):
        prepare_cnceleb(root, tmp_path / "p", OPTIONS)


# --------------------------------------------------------------------------
# LibriSpeech
# --------------------------------------------------------------------------


def test_librispeech_splits(tmp_path: Path):
    root = tmp_path / "LibriSpeech"
    spks = {"train-clean-100": ("19", "26", "32"), "test-clean": ("61", "121")}
    for split, speakers in spks.items():
        for spk in speakers:
            chapter = root / split / spk / "198"
            text = []
            for n in range(3):
                utt = f"{spk}-198-{n:04d}"
                write_voice(chapter / f"{utt}.flac", spk, n)
                text.append(f"{utt} WORDS OF {utt}")
            (chapter / f"{spk}-198.trans.txt").write_text("\n".join(text))
    (root / "SPEAKERS.TXT").write_text(
        ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
        "19   | F | train-clean-100  | 25.19 | Kara Shallenberg\n"
        "61   | M | test-clean       |  8.08 | Paul-Gabriel Wiener\n"
    )
    prepare_librispeech(root, tmp_path / "p", OPTIONS)
    m = manifests(tmp_path / "p")
    assert set(m["train"]) == set(m["valid"]) == {"19", "26", "32"}
    assert m["test"] == {
        s: {f"{s}-198-{n:04d}" for n in range(3)} for s in ("61", "121")
    }
    rows = read_manifest(tmp_path / "p" / "test.csv")
    row = next(r for r in rows if r.utt_id == "61-198-0002")
    assert (row.gender, row.words) == ("m", "WORDS OF 61-198-0002")
    genders = {
        r.spk_id: r.gender for r in read_manifest(tmp_path / "p/train.csv")
    }
    assert genders == {"19": "f", "26": "unknown", "32": "unknown"}
    check_drawn_trials(tmp_path / "p", m["test"])
    with pytest.raises(FileNotFoundError, match="dev-clean"):
        prepare_librispeech(
            root, tmp_path / "q", OPTIONS, test_splits=["dev-clean"]
        )


# --------------------------------------------------------------------------
# Vietnam-Celeb
# --------------------------------------------------------------------------


def test_vietnam_celeb_e_and_h(tmp_path: Path):
    root = tmp_path / "vietnam-celeb"
    train_lines = []
    for spk in ("id00001", "id00002", "id00003"):
        for n in range(2):
            write_voice(root / "data" / spk / f"{n:05d}.wav", spk, n)
            train_lines.append(f"{spk}\t{n:05d}.wav")
    train_lines.append("id00003\t00007.wav")  # listed, no file
    write_voice(root / "data/id00003/00009.wav", "id00003", 9)  # unlisted
    for spk in ("id00998", "id00999"):
        for n in range(3):
            write_voice(root / "data" / spk / f"{n:05d}.wav", spk, n)
    (root / "vietnam-celeb-t.txt").write_text("\n".join(train_lines) + "\n")
    e = [
        "1 id00998/00000.wav id00998/00001.wav",
        "0 id00998/00000.wav id00999/00002.wav",
    ]
    h = [
        "0 id00999/00000.wav id00998/00002.wav",
        "1 id00999/00000.wav id00999/00001.wav",
    ]
    (root / "vietnam-celeb-e.txt").write_text("\n".join(e) + "\n")
    (root / "vietnam-celeb-h.txt").write_text("\n".join(h) + "\n")
    (root / "vietnam-celeb-metadata.tsv").write_text(
        "speaker_id\tgender\tdialect\nid00001\tfemale\tnorthern\n"
        "id00998\tmale\tsouthern\n"
    )
    summary = prepare_vietnam_celeb(root, tmp_path / "e", OPTIONS)
    assert read_trials(tmp_path / "e/trials.txt") == [as_ids(t) for t in e]
    m = manifests(tmp_path / "e")
    assert set(m["train"]) == {"id00001", "id00002", "id00003"}
    n_train = summary["utterances"]["train"] + summary["utterances"]["valid"]
    assert n_train == 6
    assert m["test"] == {
        "id00998": {"id00998-00000", "id00998-00001"},
        "id00999": {"id00999-00002"},
    }
    left = skipped(tmp_path / "e")
    assert "no such file" in left["id00003/00007.wav"]
    assert left["id00003-00009"].startswith("in neither")
    rows = read_manifest(tmp_path / "e/test.csv")
    assert {r.spk_id: r.gender for r in rows}["id00998"] == "m"
    prepare_vietnam_celeb(
        root, tmp_path / "h", OPTIONS, trials="vietnam-celeb-h.txt"
    )
    assert read_trials(tmp_path / "h/trials.txt") == [as_ids(t) for t in h]


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def test_cli_corpus_option_refused(tmp_path: Path, capsys):
    data_prep = load_script("data_prep.py")
    argv = ["--corpus", "librispeech", "--trials", "x.txt"]
    argv += ["--data_folder", str(tmp_path), "--prep_folder", str(tmp_path)]
    assert run_cli(lambda: data_prep.main(argv)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --trials is not an option of --corpus librispeech (its "
        "options: --train_splits, --test_splits)"
    ]


@pytest.mark.parametrize(
    "corpus", ["folders", "voxceleb", "cnceleb", "librispeech", "vietnam_celeb"]
)
def test_cli_missing_data_folder(tmp_path: Path, capsys, corpus: str):
    data_prep = load_script("data_prep.py")
    save = tmp_path / "prep"
    argv = ["--corpus", corpus, "--data_folder", str(tmp_path / "nope")]
    argv += ["--prep_folder", str(save)]
    argv += ["--test_speakers", "2"] if corpus == "folders" else []
    assert run_cli(lambda: data_prep.main(argv)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: data folder not found: {tmp_path / 'nope'}"]
    assert not save.exists()


def test_cli_folders_prints_and_skips(
    own_root: Path, tmp_path: Path, capsys, caplog
):
    data_prep = load_script("data_prep.py")
    argv = ["--corpus", "folders", "--data_folder", str(own_root)]
    argv += ["--prep_folder", str(tmp_path), "--test_speakers", "2"]
    assert run_cli(lambda: data_prep.main(argv)) == 0
    out = capsys.readouterr().out
    assert "test :    2 speakers" in out
    assert (
        sf.info(next((tmp_path / "wavs/test").rglob("*.wav"))).samplerate
        == 16000
    )
    options = (tmp_path / "options.json").read_text()
    assert '"test_speakers": "2"' in options
    # the same command again does nothing
    caplog.set_level("INFO", logger="deep_speaker_sb")
    assert run_cli(lambda: data_prep.main(argv)) == 0
    assert "already prepared, skipping" in caplog.text
    # another test split is another preparation
    argv[-1] = "3"
    assert run_cli(lambda: data_prep.main(argv)) == 0
    assert "test :    3 speakers" in capsys.readouterr().out
    counts = Counter(r.spk_id for r in read_manifest(tmp_path / "test.csv"))
    assert len(counts) == 3


def test_training_at_another_rate_refused(own_root: Path, tmp_path: Path):
    """Prepared at 16 kHz (the other corpora's default), trained with the
    YAML's 8 kHz: one error line saying what to add."""
    prep = tmp_path / "prep"
    prepare_folders(own_root, prep, OPTIONS, test_speakers=2)
    proc = run_script(
        "train_softmax.py",
        ROOT / "hparams" / "softmax.yaml",
        *("--data_folder", own_root, "--prep_folder", prep),
        *("--output_folder", tmp_path / "out", "--skip_prep", "True"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "prepared at 16000 Hz" in errors[0]
    assert "--sample_rate 16000" in errors[0]
