"""Unit tests of the ResCNN lobe and the feature front end."""

from __future__ import annotations

import pytest
import torch

from deep_speaker_sb.features import Features
from deep_speaker_sb.lobes.rescnn import ResCNN

NARROW = dict(channels=(8, 16, 32, 64), emb_dim=32)


def test_output_shape_and_unit_norm():
    model = ResCNN(**NARROW)
    emb = model(torch.rand(3, 150, 64), torch.tensor([1.0, 0.5, 0.8]))
    assert emb.shape == (3, 32)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


def test_paper_width_parameter_count():
    model = ResCNN()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 24_165_568  # paper: about 24 M
    assert 20e6 < n_params < 28e6
    assert model.config == {
        "n_mels": 64,
        "channels": [64, 128, 256, 512],
        "emb_dim": 512,
        "blocks_per_stage": 3,
        "clip": 20.0,
        "pooling": "mean",
    }


@pytest.mark.parametrize("pooling", ["mean", "stats"])
@pytest.mark.parametrize("short_len", [37, 100, 101])
def test_padding_does_not_change_embedding(short_len, pooling):
    torch.manual_seed(0)
    model = ResCNN(**NARROW, pooling=pooling)
    # give batch norm non-trivial statistics, then freeze them
    model.train()
    model(torch.randn(4, 120, 64) * 3)
    model.eval()
    long_len = 160
    short = torch.randn(1, short_len, 64)
    long = torch.randn(1, long_len, 64)
    batch = torch.zeros(2, long_len, 64)
    batch[0, :short_len] = short[0]
    batch[0, short_len:] = 50.0  # garbage padding must not leak
    batch[1] = long[0]
    lengths = torch.tensor([short_len / long_len, 1.0])
    with torch.no_grad():
        alone = model(short)
        alone_long = model(long)
        batched = model(batch, lengths)
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert torch.allclose(alone_long[0], batched[1], atol=1e-5)


def test_gradients_reach_first_layer():
    model = ResCNN(**NARROW)
    emb = model(torch.randn(2, 80, 64))
    emb[:, 0].sum().backward()
    grad = model.convs[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_clipped_relu_bound():
    model = ResCNN(**NARROW, clip=20.0)
    assert model.act(torch.tensor([100.0])).item() == 20.0


@pytest.mark.parametrize("kind,n_feats", [("fbank", 64), ("mfcc", 40)])
def test_features_shapes(kind, n_feats):
    feats = Features(kind, sample_rate=8000, n_mels=64, n_mfcc=40)
    out = feats(torch.randn(2, 3 * 8000))
    assert feats.n_features == n_feats
    assert out.shape == (2, 301, n_feats)
    assert feats.config["kind"] == kind


def test_features_bad_kind():
    with pytest.raises(ValueError, match="fbank"):
        Features("spectrogram")


def test_stats_pooling_by_hand():
    from deep_speaker_sb.lobes.rescnn import pool_time

    h = torch.randn(2, 9, 5)
    h[0, 6:] = 0.0  # the first sentence has 6 valid frames
    got = pool_time(h, torch.tensor([6, 9]), "stats")
    for b, n in ((0, 6), (1, 9)):
        frames = h[b, :n]
        want = torch.cat([frames.mean(0), frames.std(0, unbiased=False)])
        assert torch.allclose(got[b], want, atol=1e-3)
    stats_model = ResCNN(**NARROW, pooling="stats")
    assert (
        stats_model.affine.in_features
        == 2 * ResCNN(**NARROW).affine.in_features
    )


def test_bad_pooling_is_a_config_error():
    from deep_speaker_sb.errors import ConfigError

    with pytest.raises(ConfigError, match="mean, stats"):
        ResCNN(**NARROW, pooling="max")
