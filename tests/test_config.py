"""Out-of-range training options: one ``error:`` line before any work.

Each case gave a traceback (``--batch_size 0``, ``--lr -1``,
``--dropout 2``, ``--number_of_epochs -1``, a class that does not exist)
or trained at chance and exited 0 (``--emb_dim 0``).  Nothing is trained
here: the check comes before the results folder is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_speaker_sb.config import RANGES, check_hparams
from tests.conftest import ROOT, run_in_process

BAD_OPTIONS = [
    ("batch_size", "0", "an integer >= 1"),
    ("lr", "-1", "a number > 0"),
    ("dropout", "2", "a number in [0, 1)"),
    ("number_of_epochs", "-1", "an integer >= 1"),
    ("emb_dim", "0", "an integer >= 1"),
    ("channels", "[0, 8]", "a non-empty list of integers >= 1"),
    ("n_mels", "0", "an integer >= 1"),
    ("batch_size", "2.5", "an integer >= 1"),
    ("lr", "nan", "a number > 0"),
]


def _args(script: str, tmp_path: Path, *extra: str) -> list[str]:
    stage = "softmax" if script == "train_softmax.py" else "triplet"
    args = [
        str(ROOT / "hparams" / f"{stage}.yaml"),
        "--results_root", str(tmp_path / "results"),
        "--prep_folder", str(tmp_path / "prep"),
        "--device", "cpu",
    ]  # fmt: skip
    if stage == "softmax":
        args += ["--data_folder", str(tmp_path / "vivos")]
    return [*args, *extra]


def _one_error_line(code: int, err: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("script", ["train_softmax.py", "train_triplet.py"])
@pytest.mark.parametrize("key, value, allowed", BAD_OPTIONS)
def test_out_of_range_option_is_one_line_before_any_work(
    tmp_path, script, key, value, allowed
):
    if key == "dropout" and script == "train_triplet.py":
        pytest.skip("the triplet stage has no classifier (no dropout)")
    code, err = run_in_process(
        script, _args(script, tmp_path, f"--{key}", value)
    )
    line = _one_error_line(code, err)
    assert line.startswith(f"error: {key} must be {allowed}"), line
    assert value.strip("[]").split(",")[0] in line, line
    assert not (tmp_path / "results").exists()  # nothing made
    assert not (tmp_path / "prep").exists()


def test_out_of_range_value_in_the_yaml_file(tmp_path):
    """A bad value written in the file, not on the command line (it made
    LinearScheduler raise a RuntimeError while the YAML loaded)."""
    text = (ROOT / "hparams" / "softmax.yaml").read_text()
    yaml = tmp_path / "softmax.yaml"
    yaml.write_text(
        text.replace("number_of_epochs: 30", "number_of_epochs: -1")
    )
    args = _args("train_softmax.py", tmp_path)
    code, err = run_in_process("train_softmax.py", [str(yaml), *args[1:]])
    line = _one_error_line(code, err)
    assert "number_of_epochs must be an integer >= 1, got -1" in line
    assert not (tmp_path / "results").exists()


def test_class_that_does_not_exist_is_one_line(tmp_path):
    text = (ROOT / "hparams" / "triplet.yaml").read_text()
    assert "!name:torch.optim.Adam\n" in text
    yaml = tmp_path / "triplet.yaml"
    yaml.write_text(text.replace("torch.optim.Adam\n", "torch.optim.Adamm\n"))
    args = _args("train_triplet.py", tmp_path)
    code, err = run_in_process("train_triplet.py", [str(yaml), *args[1:]])
    line = _one_error_line(code, err)
    assert "torch.optim.Adamm" in line and "does not exist" in line, line
    assert not (tmp_path / "results").exists()


def test_the_yamls_defaults_are_in_range():
    """Every checked key exists in a YAML (no dead entry), and the
    shipped values pass."""
    from deep_speaker_sb.config import plain_values

    keys = set()
    for stage in ("softmax", "triplet"):
        values = plain_values((ROOT / "hparams" / f"{stage}.yaml").read_text())
        check_hparams(values)
        keys |= set(values)
    assert set(RANGES) <= keys, set(RANGES) - keys
