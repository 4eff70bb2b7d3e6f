"""SpeechBrain's ECAPA-TDNN behind this package's lobe contract.

:class:`EcapaTDNN` wraps :class:`speechbrain.lobes.models.ECAPA_TDNN.
ECAPA_TDNN` (Desplanques et al., "ECAPA-TDNN: Emphasized Channel
Attention, Propagation and Aggregation in TDNN Based Speaker
Verification", 2020), the field's standard speaker encoder, so that it can
take the ResCNN's place in the recipe (``embedding_model``) and be
compared with it on the same data, augmentation, budget and scoring
(``bench/accuracy.py``'s ``ecapa`` variant).  It keeps the contract of
:class:`~deep_speaker_sb.lobes.rescnn.ResCNN`: features ``[batch, time,
n_mels]`` and relative lengths ``[batch]`` in, L2-normalized embeddings
``[batch, emb_dim]`` out (SpeechBrain's model returns ``[batch, 1, D]``,
unnormalized), and a ``config`` of its constructor arguments.

The softmax stage trains it with the YAML's model swapped on the command
line (every other key of ``hparams/softmax.yaml`` stays)::

    python train_softmax.py hparams/softmax.yaml ... --pretrain_loss aam \\
        --embedding_model "!new:deep_speaker_sb.lobes.ecapa.EcapaTDNN \\
            {n_mels: !ref <n_features>, emb_dim: !ref <emb_dim>}"

It exports like the ResCNN (``export_pretrained(...,
embedding_model=EcapaTDNN(...))``: ``config.json`` names the class, see
:mod:`deep_speaker_sb.lobes`), and its ONNX graphs keep dynamic batch and
time axes: :meth:`EcapaTDNN.forward` runs SpeechBrain's layers itself and
makes the frame mask of its squeeze-excitation and attentive pooling by
broadcasting (SpeechBrain's ``length_to_mask`` expands its mask to the
Python length of the batch, which the ONNX tracer freezes), with the same
numbers as SpeechBrain's own forward.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from speechbrain.lobes.models.ECAPA_TDNN import (
    ECAPA_TDNN,
    AttentiveStatisticsPooling,
    SERes2NetBlock,
    TDNNBlock,
)
from torch import Tensor, nn

#: A CPU-budget ECAPA-TDNN (688,752 parameters with 40 bands and
#: ``emb_dim`` 128, the size of the CPU-budget ResCNN, 711,600).
SMALL_CHANNELS = (128, 128, 128, 128, 384)


def frame_mask(lengths: Tensor, n_frames: int | Tensor) -> Tensor:
    """``[B, 1, n_frames]`` mask (``lengths``' dtype) of the frames ``t <
    lengths[b] * n_frames``: SpeechBrain's ``length_to_mask(lengths * L,
    max_len=L)``, by broadcasting, so that a traced graph keeps its batch
    axis dynamic.

    Example
    -------
    >>> frame_mask(torch.tensor([1.0, 0.5]), 4)
    tensor([[[1., 1., 1., 1.]],
    <BLANKLINE>
            [[1., 1., 0., 0.]]])
    """
    steps = torch.arange(n_frames, dtype=lengths.dtype, device=lengths.device)
    valid = steps[None, :] < (lengths * n_frames)[:, None]
    return valid.to(lengths.dtype)[:, None, :]


def _masked_stats(x: Tensor, weights: Tensor, eps: float) -> Tensor:
    """Weighted mean and standard deviation over time ``[B, 2C]`` of ``x``
    ``[B, C, T]`` (``weights`` sum to 1 over time)."""
    mean = (weights * x).sum(dim=2)
    var = (weights * (x - mean[:, :, None]).pow(2)).sum(dim=2)
    return torch.cat((mean, var.clamp(eps).sqrt()), dim=1)


def _squeeze_excite(
    block: SERes2NetBlock, x: Tensor, mask: Tensor | None
) -> Tensor:
    """SpeechBrain's ``SERes2NetBlock`` with the mean of its
    squeeze-excitation over the frames of ``mask`` (None: all)."""
    residual = block.shortcut(x) if block.shortcut else x
    h = block.tdnn2(block.res2net_block(block.tdnn1(x)))
    se = block.se_block
    if mask is None:
        s = h.mean(dim=2, keepdim=True)
    else:
        s = (h * mask).sum(dim=2, keepdim=True) / mask.sum(dim=2, keepdim=True)
    s = se.sigmoid(se.conv2(se.relu(se.conv1(s))))
    return s * h + residual


def _attentive_pool(
    asp: AttentiveStatisticsPooling, x: Tensor, mask: Tensor
) -> Tensor:
    """SpeechBrain's ``AttentiveStatisticsPooling`` ``[B, C, T] -> [B, 2C,
    1]`` over the frames of ``mask`` ``[B, 1, T]``."""
    attn = x
    if asp.global_context:
        stats = _masked_stats(x, mask / mask.sum(dim=2, keepdim=True), asp.eps)
        context = stats[:, :, None].expand(-1, -1, x.shape[2])
        attn = torch.cat((x, context), dim=1)
    attn = asp.conv(asp.tanh(asp.tdnn(attn)))
    attn = attn.masked_fill(mask == 0, float("-inf")).softmax(dim=2)
    return _masked_stats(x, attn, asp.eps)[:, :, None]


class EcapaTDNN(nn.Module):
    """ECAPA-TDNN embeddings ``[B, T, n_mels] -> [B, emb_dim]``, L2-normed.

    Arguments
    ---------
    n_mels : int
        Input features per frame.
    emb_dim : int
        Embedding size (SpeechBrain's ``lin_neurons``).
    channels : sequence of int
        Channels of the first TDNN block, the SE-Res2Net blocks and the
        multi-layer feature aggregation (SpeechBrain's default: 512, 512,
        512, 512, 1536; :data:`SMALL_CHANNELS` is the CPU-budget size).
    kernel_sizes, dilations : sequence of int
        One per entry of ``channels``.
    attention_channels : int
        Hidden size of the attentive statistics pooling.
    res2net_scale : int
        Res2Net splits of each SE-Res2Net block (divides its channels).
    se_channels : int
        Hidden size of the squeeze-excitation.

    Example
    -------
    >>> import torch
    >>> model = EcapaTDNN(n_mels=20, emb_dim=16, channels=(32, 32, 96),
    ...                   kernel_sizes=(5, 3, 1), dilations=(1, 2, 1),
    ...                   attention_channels=8, se_channels=8)
    >>> emb = model(torch.rand(3, 50, 20), torch.tensor([1.0, 0.8, 0.5]))
    >>> emb.shape, bool(emb.norm(dim=1).allclose(torch.ones(3)))
    (torch.Size([3, 16]), True)
    >>> model.config["channels"]
    [32, 32, 96]
    """

    def __init__(
        self,
        n_mels: int = 40,
        emb_dim: int = 192,
        channels: Sequence[int] = (512, 512, 512, 512, 1536),
        kernel_sizes: Sequence[int] = (5, 3, 3, 3, 1),
        dilations: Sequence[int] = (1, 2, 3, 4, 1),
        attention_channels: int = 128,
        res2net_scale: int = 8,
        se_channels: int = 128,
    ):
        super().__init__()
        #: Constructor arguments (plain data).
        self.config: dict[str, Any] = {
            "n_mels": int(n_mels),
            "emb_dim": int(emb_dim),
            "channels": [int(c) for c in channels],
            "kernel_sizes": [int(k) for k in kernel_sizes],
            "dilations": [int(d) for d in dilations],
            "attention_channels": int(attention_channels),
            "res2net_scale": int(res2net_scale),
            "se_channels": int(se_channels),
        }
        cfg = self.config
        self.ecapa = ECAPA_TDNN(
            cfg["n_mels"],
            lin_neurons=cfg["emb_dim"],
            channels=cfg["channels"],
            kernel_sizes=cfg["kernel_sizes"],
            dilations=cfg["dilations"],
            attention_channels=cfg["attention_channels"],
            res2net_scale=cfg["res2net_scale"],
            se_channels=cfg["se_channels"],
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Embeds features ``x`` ``[B, T, n_mels]`` (relative ``lengths``
        ``[B]``, None: all full) as ``[B, emb_dim]``, L2-normalized.

        The layers of SpeechBrain's ``ECAPA_TDNN.forward`` in its order,
        the frame mask made once by :func:`frame_mask`."""
        ecapa = self.ecapa
        h = x.transpose(1, 2)
        n_frames = h.shape[2]
        mask = None
        if lengths is not None:
            mask = frame_mask(lengths.to(h.device), n_frames)
        outputs = []
        for block in ecapa.blocks:
            if isinstance(block, TDNNBlock):
                h = block(h)
            else:
                h = _squeeze_excite(block, h, mask)
            outputs.append(h)
        h = ecapa.mfa(torch.cat(outputs[1:], dim=1))
        if mask is None:  # SpeechBrain's pooling of full lengths
            mask = torch.ones(h.shape[0], 1, n_frames, device=h.device)
        h = ecapa.fc(ecapa.asp_bn(_attentive_pool(ecapa.asp, h, mask)))
        return nn.functional.normalize(h.squeeze(2), dim=-1)
