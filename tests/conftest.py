"""Shared fixtures: a tiny generated corpus and its prepared manifests.

Both are session-scoped so the end-to-end tests of every stage reuse one
corpus (a few speakers, a few short utterances) instead of each making
their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VIVOS-layout corpus: 4 train speakers, 3 test speakers."""
    from deep_speaker_sb.data.synthetic import generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "vivos"
    return generate_corpus(
        out,
        n_train_speakers=4,
        n_test_speakers=3,
        utts_per_speaker=6,
        seed=7,
    )


@pytest.fixture(scope="session")
def tiny_prepared(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The prepared 8 kHz manifests of :func:`tiny_corpus` (save folder)."""
    from deep_speaker_sb.data.vivos import prepare_vivos

    save = tmp_path_factory.mktemp("prepared") / "vivos8k"
    prepare_vivos(tiny_corpus, save, seg_dur=3.0, min_dur=1.0, seed=1)
    return save
