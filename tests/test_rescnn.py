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
        "se_reduction": 0,
        "time_strides": [2, 2, 2, 2],
        "freq_coord": False,
        "pool_bn": False,
    }


@pytest.mark.parametrize(
    "pooling,se_reduction,time_strides,freq_coord",
    [
        ("mean", 0, None, False),
        ("stats", 0, None, False),
        ("attentive_stats", 0, None, False),
        ("mean", 4, None, False),
        ("attentive_stats", 4, (1, 2, 2, 2), False),
        ("attentive_stats", 4, None, True),
    ],
)
@pytest.mark.parametrize("short_len", [37, 100, 101])
def test_padding_does_not_change_embedding(
    short_len, pooling, se_reduction, time_strides, freq_coord
):
    torch.manual_seed(0)
    model = ResCNN(
        **NARROW,
        pooling=pooling,
        se_reduction=se_reduction,
        time_strides=time_strides,
        freq_coord=freq_coord,
    )
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

    with pytest.raises(ConfigError, match="mean, stats, attentive_stats"):
        ResCNN(**NARROW, pooling="max")
    for bad in (-1, 2.5, True, "8"):
        with pytest.raises(ConfigError, match="se_reduction"):
            ResCNN(**NARROW, se_reduction=bad)
    n_stages = len(NARROW["channels"])
    for bad in ([2] * (n_stages + 1), [3] * n_stages, [True] * n_stages):
        with pytest.raises(ConfigError, match="time_strides"):
            ResCNN(**NARROW, time_strides=bad)
    for bad in (1, "True", None):
        with pytest.raises(ConfigError, match="freq_coord"):
            ResCNN(**NARROW, freq_coord=bad)
        with pytest.raises(ConfigError, match="pool_bn"):
            ResCNN(**NARROW, pool_bn=bad)


def test_freq_coord_feeds_the_frequency_position():
    """With freq_coord the first convolution reads a second channel: the
    bin's position, -1 at the lowest bin to 1 at the highest, on every
    valid frame (zero on padding), whatever the features; without it, the
    features alone."""
    plain = ResCNN(**NARROW).eval()
    coord = ResCNN(**NARROW, freq_coord=True).eval()
    assert plain.convs[0].in_channels == 1
    assert coord.convs[0].in_channels == 2
    assert coord.config["freq_coord"] is True
    seen = {}
    coord.convs[0].register_forward_pre_hook(
        lambda m, a: seen.__setitem__("x", a[0])
    )
    x = torch.randn(2, 30, 64)
    with torch.no_grad():
        coord(x, torch.tensor([1.0, 0.5]))
    h = seen["x"]
    assert h.shape == (2, 2, 30, 64)
    torch.testing.assert_close(h[0, 0], x[0])
    ramp = torch.linspace(-1.0, 1.0, 64)
    torch.testing.assert_close(h[0, 1], ramp.expand(30, 64))
    torch.testing.assert_close(h[1, 1, :15], ramp.expand(15, 64))
    assert h[1, :, 15:].abs().max() == 0.0


def _mean_cosine(emb: torch.Tensor) -> float:
    """Mean cosine between the rows of ``emb``, each with the others."""
    cos = emb @ emb.t()
    n = len(cos)
    return float((cos.sum() - cos.diagonal().sum()) / (n * n - n))


def test_pool_bn_centers_the_pooled_statistics():
    """pool_bn: the pooled statistics reach the affine layer batch-
    normalized in training (zero mean, unit variance per dimension), so
    the embeddings of a batch no longer start almost parallel; padding
    still does not leak into an embedding."""
    torch.manual_seed(0)
    kwargs = dict(NARROW, pooling="attentive_stats", time_strides=(1, 1, 2, 2))
    plain = ResCNN(**kwargs).train()
    normed = ResCNN(**kwargs, pool_bn=True).train()
    assert plain.pool_bn is None and normed.config["pool_bn"] is True
    dim = normed.affine.in_features
    assert _n_params(normed) == _n_params(plain) + 2 * dim
    seen = {}
    normed.affine.register_forward_pre_hook(
        lambda m, a: seen.__setitem__("x", a[0])
    )
    x = torch.randn(16, 80, 64)
    with torch.no_grad():
        emb_normed = normed(x)
        emb_plain = plain(x)
    pooled = seen["x"]
    torch.testing.assert_close(
        pooled.mean(0), torch.zeros(dim), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        pooled.var(0, unbiased=False), torch.ones(dim), atol=1e-2, rtol=0
    )
    assert _mean_cosine(emb_plain) > 0.8
    assert abs(_mean_cosine(emb_normed)) < 0.3
    # evaluation: running statistics, and padding does not leak
    normed.eval()
    batch = torch.cat([x[:1, :50], torch.full((1, 30, 64), 50.0)], dim=1)
    with torch.no_grad():
        alone = normed(x[:1, :50])
        padded = normed(torch.cat([batch, x[1:2]]), torch.tensor([50 / 80, 1]))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=0)


def test_time_stride_one_keeps_the_frames():
    """A first stage with time stride 1 keeps twice the frames to the
    pooling (and changes no parameter count); frequency is halved as
    before."""
    n_stages = len(NARROW["channels"])
    paper = ResCNN(**NARROW).eval()
    kept = ResCNN(**NARROW, time_strides=[1] + [2] * (n_stages - 1)).eval()
    assert _n_params(kept) == _n_params(paper)
    assert kept.out_freq == paper.out_freq
    assert kept.config["time_strides"][0] == 1
    frames = {}
    x = torch.randn(2, 160, 64)
    for name, model in (("paper", paper), ("kept", kept)):
        # [B, C, T', F'] out of the last stage's convolution
        handle = model.convs[-1].register_forward_hook(
            lambda m, a, out, name=name: frames.__setitem__(name, out.shape)
        )
        with torch.no_grad():
            model(x)
        handle.remove()
    assert frames["kept"][2] == 2 * frames["paper"][2]
    assert frames["kept"][3] == frames["paper"][3]


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_se_and_attentive_pooling_add_their_parameters():
    from deep_speaker_sb.lobes.rescnn import (
        ATTENTION_DIM,
        AttentiveStatsPool,
        SqueezeExcitation,
    )

    plain = ResCNN(**NARROW)
    se = ResCNN(**NARROW, se_reduction=8)
    blocks = [b for stage in se.stages for b in stage]
    assert all(isinstance(b.se, SqueezeExcitation) for b in blocks)
    assert all(b.se is None for stage in plain.stages for b in stage)
    # per block: C -> C / 8 -> C, with biases
    added = sum(2 * c * (c // 8) + c // 8 + c for c in NARROW["channels"]) * 3
    assert _n_params(se) == _n_params(plain) + added
    assert se.config["se_reduction"] == 8

    att = ResCNN(**NARROW, pooling="attentive_stats")
    stats = ResCNN(**NARROW, pooling="stats")
    assert isinstance(att.attention, AttentiveStatsPool)
    dim = NARROW["channels"][-1] * att.out_freq
    assert att.affine.in_features == stats.affine.in_features == 2 * dim
    assert _n_params(att) == _n_params(stats) + (
        dim * ATTENTION_DIM + ATTENTION_DIM + ATTENTION_DIM + 1
    )
    emb = ResCNN(**NARROW, pooling="attentive_stats", se_reduction=4)(
        torch.randn(3, 90, 64), torch.tensor([1.0, 0.4, 0.7])
    )
    assert emb.shape == (3, 32)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


def test_attentive_pooling_weights_the_frames():
    """Equal scores: the plain mean and std; a frame the network scores
    far higher than the others: that frame alone."""
    from deep_speaker_sb.lobes.rescnn import AttentiveStatsPool, pool_time

    torch.manual_seed(0)
    h = torch.randn(2, 7, 5)
    h[0, 4:] = 0.0  # 4 valid frames
    n = torch.tensor([4, 7])
    pool = AttentiveStatsPool(5, hidden=3)
    with torch.no_grad():
        pool.score.weight.zero_()  # every frame scores the same
    assert torch.allclose(pool(h, n), pool_time(h, n, "stats"), atol=1e-5)
    with torch.no_grad():
        pool.hidden.weight.zero_()
        pool.hidden.weight[0, 0] = 50.0  # tanh saturates on feature 0
        pool.score.weight.zero_()
        pool.score.weight[0, 0] = 100.0
    h2 = torch.zeros(1, 6, 5)
    h2[0, :, 0] = -1.0
    h2[0, 2] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    out = pool(h2, torch.tensor([6]))
    assert torch.allclose(out[0, :5], h2[0, 2], atol=1e-4)
    assert out[0, 5:].max() < 0.01  # its weight is about 1: no spread


def test_model_section_options_reach_the_model():
    """The YAML keys se_reduction and pooling, and a wider CPU budget
    (channels 32-64-128-256), given on the command line."""
    from deep_speaker_sb.cli import load_recipe_hparams, parse_recipe_args
    from tests.conftest import ROOT

    hparams_file, _, overrides = parse_recipe_args(
        [
            str(ROOT / "hparams" / "softmax.yaml"),
            "--data_folder=unused",
            "--channels", "[32, 64, 128, 256]",
            "--se_reduction", "8",
            "--pooling", "attentive_stats",
            "--time_strides", "[1, 2, 2, 2]",
            "--freq_coord", "True",
        ]
    )  # fmt: skip
    model = load_recipe_hparams(hparams_file, overrides)["embedding_model"]
    assert model.config["time_strides"] == [1, 2, 2, 2]
    assert model.convs[0].in_channels == 2
    assert [conv.stride for conv in model.convs] == [(1, 2)] + [(2, 2)] * 3
    assert model.config["channels"] == [32, 64, 128, 256]
    assert model.config["se_reduction"] == 8
    assert model.config["pooling"] == "attentive_stats"
    assert [conv.out_channels for conv in model.convs] == [32, 64, 128, 256]
    assert model(torch.randn(1, 60, 64)).shape == (1, 512)
