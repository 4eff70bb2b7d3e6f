"""Checkpoints are complete or absent (deep_speaker_sb.checkpoints).

A failed save (a full disk) leaves no ``CKPT+`` folder and is one
``error:`` line; a damaged checkpoint is moved aside with a warning and
resuming takes the previous one.  Tiny ``Linear`` modules stand in for
the model, except in the one run of train_softmax.py.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import torch
from speechbrain.utils.epoch_loop import EpochCounter

from deep_speaker_sb import checkpoints
from deep_speaker_sb.checkpoints import SafeCheckpointer
from deep_speaker_sb.errors import OutputError, UserError
from tests.conftest import log_epochs, narrow_softmax_args, run_in_process


def _saver(folder: Path, seed: int = 0) -> SafeCheckpointer:
    torch.manual_seed(seed)
    return SafeCheckpointer(
        folder,
        {
            "a": torch.nn.Linear(4, 4),
            "b": torch.nn.Linear(4, 2),
            "counter": EpochCounter(10),
        },
    )


def _names(folder: Path) -> list[str]:
    return sorted(p.name.split("+")[0] for p in folder.iterdir())


def _fail_on_call(monkeypatch, n: int, exc: BaseException) -> list:
    """torch.save raises ``exc`` from its ``n``-th call on."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) >= n:
            raise exc
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return calls


def test_full_disk_midway_leaves_no_checkpoint(tmp_path, monkeypatch):
    saver = _saver(tmp_path)
    saver.save_checkpoint(meta={"epoch": 1})
    calls = _fail_on_call(
        monkeypatch, 2, OSError(errno.ENOSPC, "No space left on device")
    )
    with pytest.raises(OutputError) as caught:
        saver.save_checkpoint(meta={"epoch": 2})
    assert len(calls) == 2  # a.ckpt written, b.ckpt failed
    assert isinstance(caught.value, UserError)
    msg = str(caught.value)
    assert "\n" not in msg and "no space left on device" in msg
    assert str(tmp_path) in msg and "resumes" in msg
    assert _names(tmp_path) == ["CKPT"]  # no half checkpoint, no temp
    monkeypatch.undo()
    assert _saver(tmp_path, 1).recover_if_possible().meta["epoch"] == 1


def test_torch_write_error_on_a_full_disk(tmp_path, monkeypatch):
    """torch's own writer says only "file write failed": with no free
    space left it is the full disk, otherwise a bug (traceback)."""
    saver = _saver(tmp_path)
    error = RuntimeError("[enforce fail at inline_container.cc:664] .")
    _fail_on_call(monkeypatch, 1, error)
    monkeypatch.setattr(checkpoints, "free_bytes", lambda folder: 4096)
    with pytest.raises(OutputError, match="no space left on device"):
        saver.save_checkpoint(meta={"epoch": 1})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(checkpoints, "free_bytes", lambda folder: 1 << 40)
    with pytest.raises(RuntimeError, match="inline_container") as caught:
        saver.save_checkpoint(meta={"epoch": 1})
    assert not isinstance(caught.value, UserError)
    assert list(tmp_path.iterdir()) == []


def _two_epochs(folder: Path) -> Path:
    """Saves epochs 1 and 2 (different weights); returns the newest."""
    saver = _saver(folder, 1)
    saver.save_checkpoint(meta={"epoch": 1})
    with torch.no_grad():
        saver.recoverables["a"].weight.add_(1.0)
    return saver.save_checkpoint(meta={"epoch": 2}).path


def _damage_truncate(ckpt: Path) -> None:
    data = (ckpt / "a.ckpt").read_bytes()
    (ckpt / "a.ckpt").write_bytes(data[: len(data) // 2])


def _damage_text(ckpt: Path) -> None:
    (ckpt / "a.ckpt").write_text("not weights\n")


def _damage_empty(ckpt: Path) -> None:
    (ckpt / "b.ckpt").write_bytes(b"")


def _damage_missing(ckpt: Path) -> None:
    (ckpt / "b.ckpt").unlink()  # a save of before: cut after the meta


def _damage_meta(ckpt: Path) -> None:
    (ckpt / "CKPT.yaml").write_text("")


@pytest.mark.parametrize(
    "damage, words",
    [
        (_damage_truncate, "a.ckpt is truncated or corrupt"),
        (_damage_text, "a.ckpt is not a file torch.save wrote"),
        (_damage_empty, "b.ckpt is empty"),
        (_damage_missing, "it has no b.ckpt"),
        (_damage_meta, "CKPT.yaml is incomplete"),
    ],
)
def test_damaged_newest_checkpoint_is_skipped(tmp_path, caplog, damage, words):
    newest = _two_epochs(tmp_path / "save")
    damage(newest)
    saver = _saver(tmp_path / "save", 2)
    with caplog.at_level(logging.WARNING):
        ckpt = saver.recover_if_possible()
    assert ckpt.meta["epoch"] == 1
    older = _saver(tmp_path / "other", 1)  # epoch 1's weights
    torch.testing.assert_close(
        saver.recoverables["a"].weight, older.recoverables["a"].weight
    )
    warnings = [r.getMessage() for r in caplog.records]
    assert any(newest.name in w and words in w for w in warnings), warnings
    # moved aside, not deleted, and no longer listed
    assert (newest.parent / f"damaged-{newest.name}").is_dir()
    assert [c.meta["epoch"] for c in saver.list_checkpoints()] == [1]


def test_extra_non_weights_ckpt_file_is_harmless(tmp_path, caplog):
    """A text file named junk.ckpt in the newest checkpoint (no
    recoverable of that name) is not read: the newest is taken."""
    newest = _two_epochs(tmp_path / "save")
    (newest / "junk.ckpt").write_text("hello\n")
    with caplog.at_level(logging.WARNING):
        ckpt = _saver(tmp_path / "save", 2).recover_if_possible()
    assert ckpt.meta["epoch"] == 2
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]


def test_only_checkpoint_damaged_starts_afresh(tmp_path):
    saver = _saver(tmp_path)
    ckpt = saver.save_checkpoint(meta={"epoch": 1})
    _damage_truncate(ckpt.path)
    assert _saver(tmp_path).recover_if_possible() is None
    assert _names(tmp_path) == ["damaged-CKPT"]


def test_softmax_full_disk_is_one_line_and_resumes(
    tiny_corpus, tiny_prepared, tmp_path, monkeypatch
):
    """train_softmax.py: a full disk at the checkpoint is one error line,
    leaves no checkpoint and logs no epoch; the next run trains epoch 1
    and train_log.txt holds it once."""
    out = tmp_path / "out"
    argv = narrow_softmax_args(
        tiny_corpus, tiny_prepared, out, "--skip_prep", "True"
    )
    argv += ["--number_of_epochs", "1", "--augment", "False"]
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, Path)) and "CKPT+" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    code, err = run_in_process("train_softmax.py", argv)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("error: cannot write a")
    assert "no space left on device" in err
    assert not list((out / "save").glob("*CKPT+*"))
    log = out / "train_log.txt"
    assert not log.exists() or not log_epochs(log)  # epoch 1 not logged
    monkeypatch.undo()

    code, err = run_in_process("train_softmax.py", argv)
    assert code == 0, err
    assert [r["epoch"] for r in log_epochs(out / "train_log.txt")] == [1]
    assert len(list((out / "save").glob("CKPT+*"))) == 1


def test_named_checkpoint_replaced_and_leftovers_removed(tmp_path):
    saver = _saver(tmp_path)
    (tmp_path / ".tmp-CKPT+2020-01-01+00-00-00+00").mkdir()  # a killed save
    saver.save_checkpoint(meta={"epoch": 1}, name="last")
    ckpt = saver.save_checkpoint(meta={"epoch": 2}, name="last")
    assert [p.name for p in tmp_path.iterdir()] == ["CKPT+last"]
    assert ckpt.path == tmp_path / "CKPT+last"
    assert sorted(p.name for p in ckpt.path.iterdir()) == [
        "CKPT.yaml",
        "a.ckpt",
        "b.ckpt",
        "counter.ckpt",
    ]
    assert _saver(tmp_path).recover_if_possible().meta["epoch"] == 2
