"""ResCNN: the residual convolutional speaker encoder of Deep Speaker.

Li et al., "Deep Speaker: an End-to-End Neural Speaker Embedding System"
(2017).  Four stages, each a 5x5 convolution with stride 2 followed by batch
normalization, a clipped ReLU ``min(max(x, 0), 20)`` and a few residual
blocks (two 3x3 convolutions with batch normalization and clipped ReLU, and
an identity skip).  The frequency axis is folded into the features
(channels x frequency, as in the paper's reshape), the frames are pooled
over time (``pooling="mean"``: the paper's average; ``"stats"``: mean and
standard deviation; ``"attentive_stats"``: mean and standard deviation
weighted by a small attention network over the frames), an affine layer
maps them to the embedding, and the embedding is L2-normalized.  Options:
squeeze-excitation in every residual block (``se_reduction``, 0 = off,
the paper's shape), a stage that keeps the time resolution
(``time_strides``, 2 in every stage = the paper's), and a second input
channel holding each feature's frequency position (``freq_coord``, for a
convolution that would otherwise see a pattern alike wherever in frequency
it sits; measured no better, docs/benchmarks.md).

Padding never changes an utterance's embedding: every convolution's input
is zero beyond each sentence's length (exactly what the convolution's own
zero padding gives an utterance processed alone), and the time pooling and
the squeeze-excitation average use only the valid frames.  In eval mode an
utterance embedded alone equals the same utterance embedded in a batch with
longer ones.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from deep_speaker_sb.errors import ConfigError


def _mask_time(x: Tensor, n_frames: Tensor) -> Tensor:
    """Zeroes frames ``t >= n_frames[b]`` of ``x`` ``[B, C, T, F]``."""
    t = torch.arange(x.shape[2], device=x.device)
    keep = t[None, :] < n_frames[:, None]
    return x * keep[:, None, :, None].to(x.dtype)


#: Time pooling choices of :class:`ResCNN`.
POOLINGS = ("mean", "stats", "attentive_stats")
#: Hidden units of the attention network of ``"attentive_stats"``.
ATTENTION_DIM = 128


def _valid_frames(n_frames: Tensor, time: int, like: Tensor) -> Tensor:
    """``[B, time]`` mask (``like``'s dtype): 1 for ``t < n_frames[b]``."""
    t = torch.arange(time, device=like.device)
    return (t[None, :] < n_frames[:, None]).to(like.dtype)


def pool_time(h: Tensor, n_frames: Tensor, pooling: str = "mean") -> Tensor:
    """Pools ``h`` ``[B, T, D]`` over its first ``n_frames[b]`` frames.

    Arguments
    ---------
    h : torch.Tensor
        Frame features ``[batch, time, dim]``, zero beyond each length.
    n_frames : torch.Tensor
        Valid frames per sentence ``[batch]`` (at least 1).
    pooling : str
        ``"mean"``: the time average ``[B, D]``; ``"stats"``: the average
        and the standard deviation, concatenated ``[B, 2 * D]``.

    Returns
    -------
    torch.Tensor
        The pooled features.

    Example
    -------
    >>> h = torch.tensor([[[1.0], [3.0], [0.0]], [[2.0], [2.0], [2.0]]])
    >>> pool_time(h, torch.tensor([2, 3]))
    tensor([[2.],
            [2.]])
    >>> mean, std = pool_time(h, torch.tensor([2, 3]), "stats")[0]
    >>> float(mean), round(float(std), 4)  # of the valid frames [1, 3]
    (2.0, 1.0)
    """
    n = n_frames[:, None].to(h.dtype)
    mean = h.sum(dim=1) / n
    if pooling == "mean":
        return mean
    keep = _valid_frames(n_frames, h.shape[1], h)[:, :, None]
    var = (((h - mean[:, None, :]) * keep) ** 2).sum(dim=1) / n
    return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=1)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018) over valid frames.

    A small network scores every frame (``dim -> hidden``, tanh, ``-> 1``);
    the softmax of the scores over the first ``n_frames[b]`` frames (padded
    frames get weight exactly 0) weights the mean and the standard
    deviation of the frames, concatenated ``[B, 2 * dim]``.

    Arguments
    ---------
    dim : int
        Features per frame.
    hidden : int
        Hidden units of the scoring network.

    Example
    -------
    >>> pool = AttentiveStatsPool(4, hidden=8)
    >>> h = torch.rand(2, 6, 4)
    >>> pool(h, torch.tensor([6, 3])).shape
    torch.Size([2, 8])
    >>> alone = pool(h[1:, :3], torch.tensor([3]))  # padding is ignored
    >>> bool(torch.allclose(pool(h, torch.tensor([6, 3]))[1], alone[0]))
    True
    """

    def __init__(self, dim: int, hidden: int = ATTENTION_DIM):
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1)

    def forward(self, h: Tensor, n_frames: Tensor) -> Tensor:
        """``h`` ``[B, T, D]`` and valid frames ``[B]`` -> ``[B, 2 * D]``."""
        keep = _valid_frames(n_frames, h.shape[1], h)
        scores = self.score(torch.tanh(self.hidden(h))).squeeze(2)
        # padded frames: exp(-1e9 - max) is exactly 0 in float32
        scores = scores * keep - 1e9 * (1.0 - keep)
        weights = torch.softmax(scores, dim=1)[:, :, None] * keep[:, :, None]
        mean = (weights * h).sum(dim=1)
        var = (weights * (h - mean[:, None, :]) ** 2).sum(dim=1)
        return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=1)


def _downsampled(n, kernel: int = 5, stride: int = 2, pad: int = 2):
    """Output length of a strided convolution for input length ``n``."""
    return (n + 2 * pad - kernel) // stride + 1


class ClippedReLU(nn.Module):
    """``min(max(x, 0), clip)``.

    Arguments
    ---------
    clip : float
        The upper bound.

    Example
    -------
    >>> ClippedReLU(20.0)(torch.tensor([-1.0, 5.0, 30.0]))
    tensor([ 0.,  5., 20.])
    """

    def __init__(self, clip: float = 20.0):
        super().__init__()
        self.clip = clip

    def forward(self, x: Tensor) -> Tensor:
        """Clamps ``x`` to ``[0, clip]``."""
        return torch.clamp(x, min=0.0, max=self.clip)


class SqueezeExcitation(nn.Module):
    """Squeeze-excitation (Hu et al., 2018) over the valid frames.

    Each channel's average over frequency and the first ``n_frames[b]``
    frames goes through ``channels -> channels // reduction`` (ReLU)
    ``-> channels`` (sigmoid), which scales the channel.

    Arguments
    ---------
    channels : int
        Channels of the input.
    reduction : int
        Reduction ratio of the bottleneck (at least one unit).

    Example
    -------
    >>> se = SqueezeExcitation(8, reduction=4)
    >>> x = torch.rand(2, 8, 10, 16)
    >>> se(x, torch.tensor([10, 7])).shape
    torch.Size([2, 8, 10, 16])
    """

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        bottleneck = max(channels // reduction, 1)
        self.down = nn.Linear(channels, bottleneck)
        self.up = nn.Linear(bottleneck, channels)

    def forward(self, x: Tensor, n_frames: Tensor) -> Tensor:
        """``x`` ``[B, C, T, F]`` -> ``x`` scaled per channel."""
        valid = _mask_time(x, n_frames).sum(dim=(2, 3))
        area = n_frames.to(x.dtype)[:, None] * x.shape[3]
        gate = torch.relu(self.down(valid / area))
        gate = torch.sigmoid(self.up(gate))
        return x * gate[:, :, None, None]


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and clipped ReLU, identity skip
    (and, with ``se_reduction > 0``, squeeze-excitation before the skip).

    Arguments
    ---------
    channels : int
        Input and output channels.
    clip : float
        Clipped ReLU bound.
    se_reduction : int
        0: no squeeze-excitation (the paper's block); else its reduction
        ratio (:class:`SqueezeExcitation`).

    Example
    -------
    >>> block = ResBlock(8)
    >>> x = torch.rand(2, 8, 10, 16)
    >>> block(x, torch.tensor([10, 7])).shape
    torch.Size([2, 8, 10, 16])
    >>> ResBlock(8, se_reduction=4)(x, torch.tensor([10, 7])).shape
    torch.Size([2, 8, 10, 16])
    """

    def __init__(
        self, channels: int, clip: float = 20.0, se_reduction: int = 0
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = ClippedReLU(clip)
        self.se = (
            SqueezeExcitation(channels, se_reduction) if se_reduction else None
        )

    def forward(self, x: Tensor, n_frames: Tensor) -> Tensor:
        """``x`` ``[B, C, T, F]`` zero beyond ``n_frames`` -> same shape."""
        h = _mask_time(self.act(self.bn1(self.conv1(x))), n_frames)
        h = self.bn2(self.conv2(h))
        if self.se is not None:
            h = self.se(h, n_frames)
        return _mask_time(self.act(h + x), n_frames)


class ResCNN(nn.Module):
    """The Deep Speaker ResCNN embedding model.

    Arguments
    ---------
    n_mels : int
        Number of input features per frame.
    channels : sequence of int
        Channels of the four (or any number of) stages.
    emb_dim : int
        Embedding dimension.
    blocks_per_stage : int
        Residual blocks after each strided convolution.
    clip : float
        Clipped ReLU bound.
    pooling : str
        Time pooling: ``"mean"`` (the paper's average), ``"stats"``
        (mean and standard deviation over the valid frames) or
        ``"attentive_stats"`` (:class:`AttentiveStatsPool`).
    se_reduction : int
        0: plain residual blocks (the paper's); else squeeze-excitation
        in every residual block with this reduction ratio (e.g. 8).
    time_strides : sequence of int, optional
        Each stage's stride over time, 1 or 2 (default: 2 in every stage,
        the paper's; the frequency stride is always 2).  A stride of 1
        keeps twice the frames for the stages after it and the pooling,
        for about twice their computation.
    freq_coord : bool
        Feed the first convolution a second channel with each feature
        bin's position, -1 (lowest) to 1 (highest), as CoordConv does
        (default False, the paper's single channel).
    pool_bn : bool
        Batch-normalize the pooled statistics before the affine layer, as
        ECAPA-TDNN does (default False, the paper's affine on the raw
        average).  The pooled values of clipped-ReLU maps are all positive
        with a large shared part, so without it the embeddings of any two
        utterances start almost parallel (mean cosine 0.97 at
        initialization for the CPU budget with attentive pooling;
        -0.05 with it).

    Example
    -------
    >>> model = ResCNN(channels=(8, 16, 32, 64), emb_dim=32)
    >>> emb = model(torch.rand(2, 200, 64))
    >>> emb.shape
    torch.Size([2, 32])
    >>> torch.allclose(emb.norm(dim=1), torch.ones(2))
    True
    >>> ResCNN(channels=(8,), emb_dim=32, pooling="stats")(
    ...     torch.rand(2, 50, 64)).shape
    torch.Size([2, 32])
    >>> ResCNN(channels=(8,), emb_dim=32, pooling="attentive_stats",
    ...        se_reduction=4)(torch.rand(2, 50, 64)).shape
    torch.Size([2, 32])
    >>> ResCNN(channels=(8, 16), emb_dim=32, time_strides=(1, 2))(
    ...     torch.rand(2, 50, 64)).shape
    torch.Size([2, 32])
    >>> ResCNN(channels=(8,), emb_dim=32, freq_coord=True)(
    ...     torch.rand(2, 50, 64)).shape
    torch.Size([2, 32])
    >>> ResCNN(channels=(8,), emb_dim=32, pool_bn=True)(
    ...     torch.rand(2, 50, 64)).shape
    torch.Size([2, 32])
    """

    def __init__(
        self,
        n_mels: int = 64,
        channels: Sequence[int] = (64, 128, 256, 512),
        emb_dim: int = 512,
        blocks_per_stage: int = 3,
        clip: float = 20.0,
        pooling: str = "mean",
        se_reduction: int = 0,
        time_strides: Sequence[int] | None = None,
        freq_coord: bool = False,
        pool_bn: bool = False,
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ConfigError("ResCNN needs at least one stage (channels)")
        if pooling not in POOLINGS:
            raise ConfigError(
                f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}"
            )
        if isinstance(se_reduction, bool) or not (
            isinstance(se_reduction, int) and se_reduction >= 0
        ):
            raise ConfigError(
                "se_reduction must be 0 (off) or a positive integer, got "
                f"{se_reduction!r}"
            )
        if time_strides is None:
            time_strides = [2] * len(channels)
        time_strides = list(time_strides)
        if len(time_strides) != len(channels) or any(
            isinstance(s, bool) or s not in (1, 2) for s in time_strides
        ):
            raise ConfigError(
                "time_strides must give each of the "
                f"{len(channels)} stages a stride of 1 or 2, got "
                f"{time_strides!r}"
            )
        self.time_strides = [int(s) for s in time_strides]
        for key, value in (("freq_coord", freq_coord), ("pool_bn", pool_bn)):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be True or False, got {value!r}")
        self.freq_coord = freq_coord
        self.config: dict[str, Any] = {
            "n_mels": int(n_mels),
            "channels": list(channels),
            "emb_dim": int(emb_dim),
            "blocks_per_stage": int(blocks_per_stage),
            "clip": float(clip),
            "pooling": pooling,
            "se_reduction": se_reduction,
            "time_strides": list(self.time_strides),
            "freq_coord": freq_coord,
            "pool_bn": pool_bn,
        }
        self.act = ClippedReLU(clip)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        self.stages = nn.ModuleList()
        in_ch, freq = (2 if freq_coord else 1), int(n_mels)
        for ch, t_stride in zip(channels, self.time_strides, strict=True):
            self.convs.append(
                nn.Conv2d(
                    in_ch, ch, 5, stride=(t_stride, 2), padding=2, bias=False
                )
            )
            self.bns.append(nn.BatchNorm2d(ch))
            self.stages.append(
                nn.ModuleList(
                    ResBlock(ch, clip, se_reduction)
                    for _ in range(blocks_per_stage)
                )
            )
            in_ch, freq = ch, _downsampled(freq)
        self.out_freq = freq
        self.pooling = pooling
        frame_dim = in_ch * freq
        self.attention = (
            AttentiveStatsPool(frame_dim)
            if pooling == "attentive_stats"
            else None
        )
        pooled = frame_dim * (1 if pooling == "mean" else 2)
        self.pool_bn = nn.BatchNorm1d(pooled) if pool_bn else None
        self.affine = nn.Linear(pooled, emb_dim)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Embeds a batch of feature sequences.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, n_mels]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[batch]`` in ``(0, 1]`` (SpeechBrain style);
            ``None`` means every sentence fills the batch.

        Returns
        -------
        torch.Tensor
            L2-normalized embeddings ``[batch, emb_dim]``.
        """
        if x.dim() != 3:
            raise ValueError(f"ResCNN expects [batch, time, feats], {x.shape}")
        batch, time = x.shape[0], x.shape[1]
        if lengths is None:
            n = torch.full((batch,), time, device=x.device, dtype=torch.long)
        else:
            n = torch.round(lengths.to(x.device).float() * time).long()
            n = n.clamp(min=1, max=time)
        h = x.unsqueeze(1)  # [B, 1, T, F]
        if self.freq_coord:
            coord = torch.linspace(-1.0, 1.0, x.shape[2], device=x.device)
            h = torch.cat([h, coord.to(x.dtype).expand_as(h)], dim=1)
        h = _mask_time(h, n)
        stages = zip(
            self.convs, self.bns, self.stages, self.time_strides, strict=True
        )
        for conv, bn, blocks, t_stride in stages:
            n = _downsampled(n, stride=t_stride)
            h = _mask_time(self.act(bn(conv(h))), n)
            for block in blocks:
                h = block(h, n)
        # [B, C, T', F'] -> [B, T', C * F'], the paper's reshape
        h = h.permute(0, 2, 1, 3).flatten(2)
        if self.attention is not None:
            pooled = self.attention(h, n)
        else:
            pooled = pool_time(h, n, self.pooling)
        if self.pool_bn is not None:
            pooled = self.pool_bn(pooled)
        emb = self.affine(pooled)
        return nn.functional.normalize(emb, p=2.0, dim=1)
