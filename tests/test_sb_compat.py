"""The SpeechBrain private members that deep_speaker_sb.sb_compat wraps.

These tests fail with a message naming the member when a SpeechBrain
release removes or changes one of them: update the wrapper in
``deep_speaker_sb/sb_compat.py`` (and only there) before anything else.
"""

from __future__ import annotations

import inspect

import torch
from speechbrain.core import Brain
from speechbrain.processing.features import Filterbank, InputNormalization
from speechbrain.utils.checkpoints import Checkpointer

from deep_speaker_sb.sb_compat import (
    PRIVATE_API,
    amplitude_to_db,
    fbank_matrix,
    load_norm_statistics,
    norm_statistics,
    private_api_problems,
)

CHANGED = "SpeechBrain's private API changed; fix deep_speaker_sb/sb_compat.py"


def test_private_members_present_with_their_parameters():
    problems = private_api_problems()
    assert not problems, f"{CHANGED}:\n" + "\n".join(problems)
    names = {name for _, name in PRIVATE_API}
    assert names == {
        "_statistics_dict",
        "_load_statistics_dict",
        "_create_fbank_matrix",
        "_amplitude_to_DB",
        "_wrap_distributed",
        "_new_checkpoint_dirpath",
        "_custom_checkpoint_dirpath",
    }


def test_norm_statistics_round_trip():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3) * 2 + 5
    norm = InputNormalization(norm_type="global")
    norm(x, torch.ones(2))
    stats = norm_statistics(norm)
    assert set(stats) == {"count", "glob_mean", "glob_std"}, (
        f"{CHANGED}: InputNormalization._statistics_dict gives {sorted(stats)}"
    )
    assert torch.allclose(stats["glob_mean"], x.mean(dim=(0, 1)), atol=1e-4), (
        f"{CHANGED}: _statistics_dict's glob_mean is not the input's mean"
    )
    fresh = InputNormalization(norm_type="global")
    load_norm_statistics(fresh, stats)
    norm.eval()
    fresh.eval()
    probe, lens = torch.randn(1, 4, 3), torch.ones(1)
    assert torch.equal(fresh(probe, lens), norm(probe, lens)), (
        f"{CHANGED}: _load_statistics_dict does not restore the statistics"
    )


def test_fbank_matrix_and_db_give_forward():
    fb = Filterbank(n_mels=6, n_fft=32, sample_rate=8000)
    torch.manual_seed(0)
    power = torch.rand(2, 5, 17)
    matrix = fbank_matrix(fb)
    assert matrix.shape == (17, 6), f"{CHANGED}: _create_fbank_matrix shape"
    got = amplitude_to_db(fb, torch.matmul(power, matrix))
    assert torch.allclose(got, fb(power), atol=1e-5), (
        f"{CHANGED}: _create_fbank_matrix and _amplitude_to_DB no longer "
        "give Filterbank.forward"
    )
    energies = torch.tensor([[[100.0, 1.0, 1e-12]]])
    assert amplitude_to_db(fb, energies).tolist() == [[[20.0, 0.0, -60.0]]], (
        f"{CHANGED}: _amplitude_to_DB (10 log10, top_db 80 floor)"
    )


def test_brain_still_calls_the_wrap_distributed_hook():
    """EmbeddingBrain overrides it (DDP on CPU): an uncalled hook is dead."""
    assert "self._wrap_distributed()" in inspect.getsource(Brain), (
        f"{CHANGED}: Brain no longer calls _wrap_distributed, which "
        "deep_speaker_sb.brains.base.EmbeddingBrain overrides"
    )


def test_checkpointer_still_names_new_checkpoints_through_the_hook():
    """SafeCheckpointer saves into a temporary folder by overriding it."""
    source = inspect.getsource(Checkpointer.save_checkpoint)
    assert "self._new_checkpoint_dirpath()" in source, (
        f"{CHANGED}: Checkpointer.save_checkpoint no longer calls "
        "_new_checkpoint_dirpath, which deep_speaker_sb.checkpoints."
        "SafeCheckpointer overrides"
    )
