"""Speaker register: enrolment sources, speaker models, ranking, identify.

A fake encoder maps each file name to a known vector, so every speaker
model and score below is worked out by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.register import (
    Candidate,
    SpeakerRegister,
    enrolment_speakers,
    identify,
)
from tests.conftest import TINY_RESCNN, run_in_process

VECTORS = {
    "A_0": [3.0, 0.0],  # speaker A: mean of (1, 0) and (0, 1) directions
    "A_1": [0.0, 0.5],
    "B_0": [0.0, 1.0],
    "B_1": [0.0, 4.0],
    "C_0": [-1.0, 0.0],
    "Q": [0.6, 0.8],
    "bad": None,
}


class FakeEncoder:
    """Embeds a file by its stem; unknown stems fail like bad audio."""

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold
        self.calls: list[list[str]] = []

    def encode_files(self, paths, batch_size=32):
        stems = [Path(p).stem for p in paths]
        self.calls.append(stems)
        if any(VECTORS.get(s) is None for s in stems):
            raise DataError("cannot read audio file")
        return torch.tensor([VECTORS[s] for s in stems])


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def enrol_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "enrol"
    for name in ("A_0", "A_1", "B_0", "B_1", "C_0"):
        _touch(folder / name[0] / f"{name}.wav")
    _touch(folder / "B" / "notes.txt")  # not audio: ignored
    (folder / "empty").mkdir()  # no audio: no speaker
    return folder


def _names(spk2wavs):
    return {k: [p.name for p in v] for k, v in spk2wavs.items()}


def test_enrolment_from_folder_and_manifest(enrol_dir, tmp_path):
    want = {
        "A": ["A_0.wav", "A_1.wav"],
        "B": ["B_0.wav", "B_1.wav"],
        "C": ["C_0.wav"],
    }
    assert _names(enrolment_speakers(enrol_dir)) == want
    manifest = tmp_path / "enrol.csv"
    rows = ["ID,duration,wav,start,stop,spk_id"] + [
        f"{u}_0,1.0,{{data_root}}/enrol/{u[0]}/{u}.wav,0,8000,{u[0]}"
        for u in ("B_1", "A_0", "B_0", "A_1", "C_0")
    ]
    manifest.write_text("\n".join(rows) + "\n")
    from_csv = enrolment_speakers(manifest)
    assert _names(from_csv) == want
    assert from_csv["A"][0] == enrol_dir / "A" / "A_0.wav"  # {data_root}


def test_enrolment_leaves_the_query_out(enrol_dir):
    got = enrolment_speakers(enrol_dir, exclude=enrol_dir / "C" / "C_0.wav")
    assert sorted(got) == ["A", "B"]  # C had nothing else
    got = enrolment_speakers(enrol_dir, exclude=enrol_dir / "A/../A/A_1.wav")
    assert _names(got)["A"] == ["A_0.wav"]


def test_enrolment_errors(tmp_path, enrol_dir):
    with pytest.raises(MissingFileError, match="not found"):
        enrolment_speakers(tmp_path / "nope")
    (tmp_path / "no_audio" / "S").mkdir(parents=True)
    with pytest.raises(DataError, match="no enrolment audio"):
        enrolment_speakers(tmp_path / "no_audio")
    lone = tmp_path / "lone"
    query = _touch(lone / "S" / "q.wav")
    with pytest.raises(DataError, match="besides"):
        enrolment_speakers(lone, exclude=query)


def test_speaker_models_are_means():
    fake = FakeEncoder()
    register = SpeakerRegister.from_audio(
        fake, {"B": ["B_0.wav", "B_1.wav"], "A": ["A_0.wav", "A_1.wav"]}
    )
    assert register.speakers == ["A", "B"]
    assert register.counts == [2, 2]
    # A: mean((3, 0), (0, .5)) = (1.5, .25); B: mean((0, 1), (0, 4)).
    torch.testing.assert_close(
        register.embeddings, torch.tensor([[1.5, 0.25], [0.0, 2.5]])
    )
    assert fake.calls == [["A_0", "A_1", "B_0", "B_1"]]  # one batch
    with pytest.raises(ValueError, match="2 speakers"):
        SpeakerRegister(["A", "B"], torch.zeros(3, 2))


def test_rank_orders_and_accepts():
    register = SpeakerRegister(
        ["A", "B", "C"],
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
    )
    got = register.rank(torch.tensor([0.6, 0.8]), threshold=0.7, top=3)
    assert [(c.speaker, c.accepted) for c in got] == [
        ("B", True),
        ("A", False),
        ("C", False),
    ]
    assert [c.score for c in got] == pytest.approx([0.8, 0.6, -0.6])
    assert register.rank(torch.tensor([0.6, 0.8]), 0.7, top=1) == got[:1]
    with pytest.raises(ConfigError, match="--top"):
        register.rank(torch.tensor([0.6, 0.8]), 0.7, top=0)


def test_identify_embeds_the_query_first(enrol_dir):
    fake = FakeEncoder(threshold=0.9)
    spk2wavs = enrolment_speakers(enrol_dir)
    got = identify(fake, "Q.wav", spk2wavs, top=2)
    a = (0.6 * 1.5 + 0.8 * 0.25) / math.hypot(1.5, 0.25)  # 0.7234
    assert got == [
        Candidate("B", pytest.approx(0.8), False),
        Candidate("A", pytest.approx(a), False),
    ]
    assert fake.calls[0] == ["Q"]
    fake = FakeEncoder(threshold=0.75)
    assert identify(fake, "Q.wav", spk2wavs, top=1)[0].accepted

    fake = FakeEncoder()
    with pytest.raises(DataError, match="cannot read audio"):
        identify(fake, "bad.wav", spk2wavs)
    assert fake.calls == [["bad"]]  # nothing else embedded
    with pytest.raises(ConfigError, match="--top"):
        identify(fake, "Q.wav", spk2wavs, top=0)


# ------------------------------------------- a saved register, real model

MODEL = TINY_RESCNN


def _export(folder: Path, seed: int) -> Path:
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.export import export_pretrained
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.lobes.rescnn import ResCNN

    torch.manual_seed(seed)
    return export_pretrained(
        folder,
        compute_features=Features(n_mels=24),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=ResCNN(**MODEL).eval(),
        threshold=0.9,
        card={},
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny exports of the same shape, different weights."""
    root = tmp_path_factory.mktemp("register_models")
    return _export(root / "m1", 1), _export(root / "m2", 2)


@pytest.fixture(scope="module")
def model(exports):
    from deep_speaker_sb.inference import DeepSpeaker

    return DeepSpeaker.from_hparams(
        source=exports[0], run_opts={"device": "cpu"}
    )


@pytest.fixture(scope="module")
def speakers(tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    """Enrolment folders (``<SPK>/<file>.wav``, links to the tiny corpus's
    test speakers) and a query file left out of all of them:
    ``first``: two speakers, 3 files each; ``second``: 2 more files of
    the first speaker and a third speaker; ``all``: both together."""
    root = tmp_path_factory.mktemp("register_enrol")
    waves = tiny_corpus / "test" / "waves"
    spk = sorted(p.name for p in waves.iterdir())
    files = {s: sorted((waves / s).glob("*.wav")) for s in spk}
    plan = {
        "first": {spk[0]: files[spk[0]][:3], spk[1]: files[spk[1]][:3]},
        "second": {spk[0]: files[spk[0]][3:5], spk[2]: files[spk[2]][:3]},
    }
    plan["all"] = {
        spk[0]: files[spk[0]][:5],
        spk[1]: files[spk[1]][:3],
        spk[2]: files[spk[2]][:3],
    }
    out = {}
    for name, spk2files in plan.items():
        for s, wavs in spk2files.items():
            (root / name / s).mkdir(parents=True)
            for w in wavs:
                (root / name / s / w.name).symlink_to(w)
        out[name] = root / name
    out["query"] = files[spk[1]][5]
    return out


def _expected_means(model, folder: Path) -> dict[str, torch.Tensor]:
    """Each speaker's mean embedding, one file at a time (no padding: the
    register side embeds with batch_size 1 too, as padding a batch moves
    an embedding by up to ~1e-3)."""
    return {
        d.name: torch.stack(
            [model.encode_file(f) for f in sorted(d.glob("*.wav"))]
        ).mean(0)
        for d in sorted(folder.iterdir())
    }


def test_enrol_save_load_equals_reembedding(model, exports, speakers, tmp_path):
    from deep_speaker_sb.inference import DeepSpeaker

    model.register = None
    for d in sorted(speakers["first"].iterdir()):
        model.enrol(d.name, sorted(d.glob("*.wav")), batch_size=1)
    path = model.save_register(tmp_path / "speakers.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["speakers.pt"]

    fresh = DeepSpeaker.from_hparams(
        source=exports[0], run_opts={"device": "cpu"}
    )
    loaded = fresh.load_register(path)
    want = _expected_means(model, speakers["first"])
    assert loaded.speakers == sorted(want)
    assert loaded.counts == [3, 3]
    assert loaded.model_id == model.model_id
    torch.testing.assert_close(
        loaded.embeddings, torch.stack(list(want.values())), atol=1e-5, rtol=0
    )
    # The file holds plain data only.
    data = torch.load(path, weights_only=True)
    assert sorted(data) == [
        "counts",
        "embeddings",
        "format",
        "model_id",
        "speakers",
    ]


def test_enrolling_again_adds_and_updates(
    verify_mod, speakers, exports, capsys
):
    path = speakers["first"].parent / "update.pt"
    common = ["--model", str(exports[0]), "--device", "cpu", "--batch_size=1"]
    for name, new, updated in (("first", 2, 0), ("second", 1, 1)):
        argv = [*common, "--enrol_save", str(path)]
        assert verify_mod.main([*argv, "--enrol", str(speakers[name])]) == 0
        out = capsys.readouterr().out
        assert f"({new} new, {updated} updated)" in out
    assert f"wrote {path}: 3 speakers, 11 files" in out
    saved = SpeakerRegister.load(path)
    # The running mean equals the mean over all of a speaker's files.
    from deep_speaker_sb.inference import DeepSpeaker

    model = DeepSpeaker.from_hparams(
        source=exports[0], run_opts={"device": "cpu"}
    )
    want = _expected_means(model, speakers["all"])
    assert saved.speakers == sorted(want)
    assert saved.counts == [5, 3, 3]
    torch.testing.assert_close(
        saved.embeddings, torch.stack(list(want.values())), atol=1e-5, rtol=0
    )
    leftovers = [p.name for p in path.parent.iterdir() if p.is_file()]
    assert leftovers == ["update.pt"]  # no temporary file left behind


def test_identify_from_register_equals_enrol_folder(
    verify_mod, model, speakers, tmp_path, capsys
):
    path = tmp_path / "all.pt"
    common = [
        "--model",
        str(model.hparams.pretrained_path),
        "--device=cpu",
        "--batch_size=1",
    ]
    argv = [*common, "--enrol_save", str(path), "--enrol", str(speakers["all"])]
    assert verify_mod.main(argv) == 0
    query = ["--wav", str(speakers["query"]), "--top", "3"]
    listings = []
    for source in (
        ["--enrol", str(speakers["all"])],
        ["--register", str(path)],
    ):
        capsys.readouterr()
        assert verify_mod.main([*common, *query, *source]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[1].endswith(f"vs 3 enrolled speakers of {source[1]}:")
        listings.append(lines[2:])
    by_folder, by_register = listings
    assert len(by_folder) == 4  # 3 ranked speakers and the answer
    assert [ln.split()[1] for ln in by_folder[:3]] == [
        ln.split()[1] for ln in by_register[:3]
    ]
    for a, b in zip(by_folder[:3], by_register[:3], strict=True):
        assert float(a.split()[3]) == pytest.approx(
            float(b.split()[3]), abs=2e-4
        )
    assert by_folder[3].split()[:2] == by_register[3].split()[:2]

    # The Python interface gives the same ranking.
    model.load_register(path)
    got = model.identify(speakers["query"], top=3)
    spk2wavs = enrolment_speakers(speakers["all"])
    want = identify(model, speakers["query"], spk2wavs, top=3, batch_size=1)
    assert [c.speaker for c in got] == [c.speaker for c in want]
    assert [c.score for c in got] == pytest.approx(
        [c.score for c in want], abs=1e-5
    )


def test_register_of_another_model_is_refused(
    verify_mod, speakers, exports, tmp_path
):
    from tests.conftest import run_script

    path = tmp_path / "m1.pt"
    base = ["--device", "cpu", "--batch_size", "4"]
    argv = ["--model", str(exports[0]), *base, "--enrol_save", str(path)]
    assert verify_mod.main([*argv, "--enrol", str(speakers["first"])]) == 0
    before = path.read_bytes()
    # As a user runs it: one line, exit 1.
    proc = run_script(
        "verify.py", "--model", exports[1], *base,
        "--wav", speakers["query"], "--register", path,
    )  # fmt: skip
    # Enrolling into it with the other model: refused, file untouched.
    in_process = run_in_process(
        "verify.py",
        ["--model", str(exports[1]), *base, "--enrol_save", str(path)]
        + ["--enrol", str(speakers["second"])],
    )
    results = [(proc.returncode, proc.stderr), in_process]
    for code, err in results:
        assert code == 1
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert f"register {path} was made with another model" in err
        assert "emb_dim 16" in err
    assert path.read_bytes() == before  # not rewritten


def test_register_api_mistakes(model, speakers, tmp_path):
    import numpy as np
    import soundfile as sf

    from deep_speaker_sb.speech import NoSpeechError

    model.register = None
    with pytest.raises(ConfigError, match="no speaker enrolled"):
        model.identify(speakers["query"])
    with pytest.raises(ConfigError, match="no speaker enrolled"):
        model.save_register(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="no audio file"):
        model.enrol("A", [])
    with pytest.raises(ConfigError, match="non-empty string"):
        model.enrol(" ", [speakers["query"]])
    model.enrol("A", [speakers["query"]])
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, "float32"), 8000)
    with pytest.raises(NoSpeechError, match="silent.wav"):
        model.enrol("B", [speakers["query"], silent])
    assert model.register.speakers == ["A"]  # nothing enrolled
    with pytest.raises(NoSpeechError, match="silent.wav"):
        model.identify(silent)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_register_file_mistakes(tmp_path, capsys):
    with pytest.raises(MissingFileError, match="--enrol_save"):
        SpeakerRegister.load(tmp_path / "none.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a register")
    with pytest.raises(DataError, match="not a speaker register"):
        SpeakerRegister.load(garbage)
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "speakers": _Evil()}, evil)
    with pytest.raises(DataError, match="not a speaker register"):
        SpeakerRegister.load(evil)
    assert "unpickled code ran" not in capsys.readouterr().out
    other = tmp_path / "other.pt"
    torch.save({"format": 99}, other)
    with pytest.raises(DataError, match="unknown format 99"):
        SpeakerRegister.load(other)
    a = SpeakerRegister(["A"], torch.ones(1, 2), model_id="2-aa")
    b = SpeakerRegister(["A"], torch.ones(1, 2), model_id="2-bb")
    with pytest.raises(ConfigError, match="another model"):
        a.update(b)
    from deep_speaker_sb.errors import OutputError

    with pytest.raises(OutputError, match="is a folder"):
        a.save(tmp_path)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--register", "r.pt"], ["--register goes with --wav"]),
        (["--enrol_save", "r.pt"], ["--enrol_save needs --enrol"]),
        (["--enrol", "d"], ["--enrol goes with --wav FILE or --enrol_save"]),
        (["--wav", "q.wav", "--enrol", "d", "--register", "r"], ["not both"]),
        (
            ["--enrol_save", "r.pt", "--enrol", "d", "--wav", "q.wav"],
            ["identify in a second call"],
        ),
        (
            ["--wav", "q.wav", "--register", "nowhere.pt"],
            ["register not found"],
        ),
    ],
)
def test_register_option_mistakes(argv, words):
    code, err = run_in_process("verify.py", argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err


@pytest.fixture(scope="module")
def verify_mod():
    from tests.conftest import load_script

    return load_script("verify.py")


# ------------------------------------- register contents, printed names


def _register_file(path: Path, model_id: str, **changes) -> Path:
    """A register file of two speakers (16-d) with ``changes`` made."""
    data = {
        "format": 1,
        "model_id": model_id,
        "speakers": ["A", "B"],
        "counts": torch.tensor([1, 2]),
        "embeddings": torch.eye(2, 16),
    }
    torch.save({**data, **changes}, path)
    return path


_NAN_ROW = torch.eye(2, 16)
_NAN_ROW[0, 3] = float("nan")


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"embeddings": _NAN_ROW}, "speaker 'A' holds NaN or infinite"),
        ({"embeddings": torch.ones(2, 10)}, "of size 10, but its model's"),
        ({"embeddings": torch.ones(2, 16, dtype=torch.long)}, "float tensor"),
        ({"embeddings": torch.ones(3, 16)}, "2 speakers but embeddings"),
        ({"counts": torch.tensor([1, 0])}, "a file count is below 1"),
        ({"counts": torch.tensor([1.5, 2.0])}, "file counts of type"),
    ],
)
def test_register_contents_are_checked(
    model, exports, speakers, tmp_path, changes, words
):
    """A NaN row was ranked first ('cosine nan'), a 10-wide register
    against the 16-d model a traceback: now refused when loaded."""
    path = _register_file(tmp_path / "bad.pt", model.model_id, **changes)
    with pytest.raises(DataError, match="is not a speaker register"):
        SpeakerRegister.load(path, model.model_id)
    with pytest.raises(DataError, match=words):
        model.load_register(path)
    code, err = run_in_process(
        "verify.py",
        ["--model", str(exports[0]), "--device", "cpu"]
        + ["--wav", str(speakers["query"]), "--register", str(path)],
    )
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"{path} is not a speaker register" in err and words in err


def test_register_rank_checks_the_embedding_size():
    register = SpeakerRegister(["A"], torch.ones(1, 10))
    with pytest.raises(ConfigError, match="register of size 10"):
        register.rank(torch.ones(16), threshold=0.5)
    with pytest.raises(DataError, match="holds NaN"):
        SpeakerRegister(["A"], torch.full((1, 2), float("inf")))


def test_printed_names_are_escaped(
    verify_mod, exports, speakers, tmp_path, capsys
):
    """A speaker folder named with a newline and an escape code printed a
    fake ``speaker: ... (accepted)`` line."""
    evil = "A\nspeaker: EVIL (accepted)\x1b[2J"
    enrol = tmp_path / "enrol"
    for name, d in zip(
        (evil, "B"), sorted(speakers["first"].iterdir()), strict=True
    ):
        (enrol / name).mkdir(parents=True)
        for f in sorted(d.glob("*.wav")):
            (enrol / name / f.name).symlink_to(f.resolve())
    common = ["--model", str(exports[0]), "--device=cpu", "--batch_size=1"]
    saved = tmp_path / "reg\x1b[31m.pt"
    assert verify_mod.main([*common, "--enrol_save", str(saved)]
                           + ["--enrol", str(enrol)]) == 0  # fmt: skip
    query = ["--wav", str(speakers["query"]), "--top", "2"]
    for source in (["--enrol", str(enrol)], ["--register", str(saved)]):
        assert verify_mod.main([*common, *query, *source]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    lines = out.splitlines()
    # the name only inside the ranked lines, never a line of its own
    assert all(ln.startswith("  ") for ln in lines if "EVIL" in ln)
    assert sum(r"A\nspeaker: EVIL (accepted)\x1b[2J" in ln for ln in lines)
    assert rf"wrote {tmp_path}/reg\x1b[31m.pt: 2 speakers" in out


# ------------------------------- enrolments into one register at once
#
# Process A holds the register's lock between its read and its write;
# process (or thread) B adds other speakers meanwhile.  B must wait for
# the lock (it logs so) and then add to what A wrote, so no enrolment is
# lost; without the lock B would write between A's read and A's write,
# and A's write would drop B's speakers.  Events, not sleeps, sequence it.


def _hold_lock_and_add(path, speaker, model_id, dim, held, go):
    """Process A: read, (hold the lock until told), add ``speaker``."""
    from deep_speaker_sb.register import register_lock

    with register_lock(path):
        old = SpeakerRegister.load(path) if Path(path).exists() else None
        held.set()
        assert go.wait(120)
        new = SpeakerRegister([speaker], torch.ones(1, dim), [1], model_id)
        (old.update(new) if old else new)._write(Path(path))


class _OnWaiting:
    """A log handler: sets ``event`` when the lock is found held."""

    def __init__(self, event):
        import logging

        self.handler = logging.Handler()
        self.handler.emit = self._emit
        self.event = event
        self.logger = logging.getLogger("deep_speaker_sb.register")

    def _emit(self, record):
        if "waiting for another process" in record.getMessage():
            self.event.set()

    def __enter__(self):
        import logging

        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


def _add_in_process(path, speaker, waiting, done):
    """Process B: adds ``speaker`` through the public update path."""
    with _OnWaiting(waiting):
        SpeakerRegister([speaker], torch.zeros(1, 2), [2], "m").add_to_file(
            path
        )
    done.set()


def _wait_either(a, b, deadline: float = 120.0) -> None:
    import time

    end = time.monotonic() + deadline
    while not (a.is_set() or b.is_set()):
        assert time.monotonic() < end, "neither event came"
        a.wait(0.05)


def test_concurrent_register_updates_all_land(tmp_path):
    import multiprocessing as mp

    path = tmp_path / "speakers.pt"
    SpeakerRegister(["C"], torch.ones(1, 2), [3], "m").save(path)
    ctx = mp.get_context("spawn")
    held, go, waiting, done = (ctx.Event() for _ in range(4))
    a = ctx.Process(
        target=_hold_lock_and_add, args=(path, "A", "m", 2, held, go)
    )
    a.start()
    try:
        assert held.wait(120)
        b = ctx.Process(target=_add_in_process, args=(path, "B", waiting, done))
        b.start()
        _wait_either(waiting, done)
        assert waiting.is_set() and not done.is_set()  # B waits for A
    finally:
        go.set()
        a.join(120)
    b.join(120)
    assert a.exitcode == 0 and b.exitcode == 0
    saved = SpeakerRegister.load(path)
    assert saved.speakers == ["A", "B", "C"]
    assert saved.counts == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["speakers.pt"]


def test_register_lock_is_released_on_error(tmp_path):
    from deep_speaker_sb.register import register_lock

    path = tmp_path / "speakers.pt"
    with pytest.raises(KeyError), register_lock(path):
        raise KeyError("x")
    with register_lock(path):  # not held any more: no wait
        pass
    assert list(tmp_path.iterdir()) == []


def test_enrol_save_while_another_enrolment_writes(
    verify_mod, speakers, exports, tmp_path, capsys
):
    """verify.py --enrol_save waits for a register held by another
    process and adds its speakers to what that process wrote."""
    import multiprocessing as mp
    import threading

    from deep_speaker_sb.inference import DeepSpeaker

    model = DeepSpeaker.from_hparams(
        source=exports[0], run_opts={"device": "cpu"}
    )
    path = tmp_path / "speakers.pt"
    ctx = mp.get_context("spawn")
    held, go = ctx.Event(), ctx.Event()
    waiting, done = threading.Event(), threading.Event()
    other = ctx.Process(
        target=_hold_lock_and_add,
        args=(path, "X", model.model_id, MODEL["emb_dim"], held, go),
    )
    other.start()
    codes = []
    argv = [
        *("--model", str(exports[0]), "--device", "cpu"),
        *("--enrol_save", str(path), "--enrol", str(speakers["first"])),
    ]

    def enrol():
        codes.append(verify_mod.main(argv))
        done.set()

    try:
        assert held.wait(120)
        with _OnWaiting(waiting):
            thread = threading.Thread(target=enrol)
            thread.start()
            _wait_either(waiting, done)
            assert waiting.is_set() and not done.is_set()
            go.set()
            thread.join(120)
    finally:
        go.set()
        other.join(120)
    assert other.exitcode == 0 and codes == [0]
    first = sorted(d.name for d in speakers["first"].iterdir())
    saved = SpeakerRegister.load(path, model.model_id)
    assert saved.speakers == sorted(["X", *first])
    assert saved.counts == [3 if s in first else 1 for s in saved.speakers]
    out = capsys.readouterr().out
    assert "(2 new, 0 updated)" in out
    assert f"wrote {path}: 3 speakers, 7 files" in out


def test_add_to_register_adds_only_new_enrolments(model, speakers, tmp_path):
    path = tmp_path / "speakers.pt"
    query = speakers["query"]
    model.register = None
    with pytest.raises(ConfigError, match="no speaker enrolled since"):
        model.add_to_register(path)
    model.enrol("A", [query])
    assert model.add_to_register(path).counts == [1]
    with pytest.raises(ConfigError, match="no speaker enrolled since"):
        model.add_to_register(path)  # A is in the file already
    model.load_register(path)
    model.enrol("A", [query])
    model.enrol("B", [query])
    saved = model.add_to_register(path)
    assert (saved.speakers, saved.counts) == (["A", "B"], [2, 1])
    assert model.register.counts == [2, 1]
