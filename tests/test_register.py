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


def test_speaker_models_are_normalized_means():
    fake = FakeEncoder()
    register = SpeakerRegister.from_audio(
        fake, {"B": ["B_0.wav", "B_1.wav"], "A": ["A_0.wav", "A_1.wav"]}
    )
    assert register.speakers == ["A", "B"]
    # A: mean((3, 0), (0, .5)) = (1.5, .25), normalized.
    a = torch.tensor([1.5, 0.25]) / math.hypot(1.5, 0.25)
    torch.testing.assert_close(
        register.embeddings, torch.stack([a, torch.tensor([0.0, 1.0])])
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
