"""Triplet loss on cosine similarity and triplet mining (Deep Speaker).

Deep Speaker (Li et al. 2017) fine-tunes its embeddings with a triplet loss
on cosine similarity: with ``SAP = cos(anchor, positive)`` and
``SAN = cos(anchor, negative)``,

    loss = mean(max(SAN - SAP + margin, 0))

The triplets are mined inside a batch of embeddings and speaker labels
(see :func:`mine_triplets`) with one of three strategies:

- ``"random"``: for every anchor, one random positive (same speaker, other
  segment) and one random negative (another speaker), as the original
  implementation did;
- ``"semihard"`` (FaceNet): every anchor-positive pair, with the most
  similar negative that is still less similar than the positive but within
  the margin (``SAP - margin < SAN < SAP``); the hardest negative when no
  such negative exists;
- ``"hardest"`` (batch-hard): for every anchor, the least similar positive
  and the most similar negative.

Mining is done on detached similarities and returns index tensors; the loss
is then computed with gradients on the selected embeddings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from speechbrain.nnet.losses import AdditiveAngularMargin

from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.scoring import cosine_matrix, cosine_similarity

#: The mining strategies understood by :func:`mine_triplets`.
MINING_STRATEGIES = ("random", "semihard", "hardest")
#: Pre-training losses of :class:`SpeakerSoftmaxLoss`.
PRETRAIN_LOSSES = ("softmax", "aam")


class TripletStats(NamedTuple):
    """What :func:`triplet_loss` returns: the loss and, for logging, the
    mean anchor-positive and anchor-negative cosine similarities.

    Attributes
    ----------
    loss : torch.Tensor
        Scalar loss (with gradient).
    sap : torch.Tensor
        Mean cos(anchor, positive), detached.
    san : torch.Tensor
        Mean cos(anchor, negative), detached.
    """

    loss: torch.Tensor
    sap: torch.Tensor
    san: torch.Tensor


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.1,
) -> TripletStats:
    """Deep Speaker's triplet loss on cosine similarity.

    Arguments
    ---------
    anchor : torch.Tensor
        Anchor embeddings ``[N, D]``.
    positive : torch.Tensor
        Embeddings of the same speakers as the anchors ``[N, D]``.
    negative : torch.Tensor
        Embeddings of other speakers ``[N, D]``.
    margin : float
        The margin alpha.

    Returns
    -------
    TripletStats
        ``loss = mean(max(SAN - SAP + margin, 0))``, mean SAP, mean SAN.
        With no triplet (``N == 0``) the loss is a zero that still depends
        on the inputs (so ``backward`` works) and SAP/SAN are NaN.

    Example
    -------
    >>> a = torch.tensor([[1.0, 0.0]])
    >>> p = torch.tensor([[0.9, 0.1]])
    >>> n = torch.tensor([[0.0, 1.0]])
    >>> triplet_loss(a, p, n, margin=0.1).loss  # margin met: zero
    tensor(0.)
    >>> stats = triplet_loss(a, a, a, margin=0.1)  # all equal: the margin
    >>> round(stats.loss.item(), 6), stats.sap.item(), stats.san.item()
    (0.1, 1.0, 1.0)
    """
    if not anchor.shape == positive.shape == negative.shape:
        raise ValueError(
            "anchor, positive and negative must have the same shape, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, "
            f"{tuple(negative.shape)}"
        )
    if anchor.shape[0] == 0:
        zero = (anchor.sum() + positive.sum() + negative.sum()) * 0.0
        nan = torch.tensor(float("nan"), device=anchor.device)
        return TripletStats(zero, nan, nan)
    sap = cosine_similarity(anchor, positive)
    san = cosine_similarity(anchor, negative)
    loss = torch.clamp(san - sap + margin, min=0.0).mean()
    return TripletStats(loss, sap.detach().mean(), san.detach().mean())


def mine_triplets(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    strategy: str = "random",
    margin: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Selects (anchor, positive, negative) triplets inside a batch.

    Only anchors that have at least one positive (another item with the
    same label) and one negative in the batch give triplets.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``[B, D]`` embeddings (need not be normalized; mining uses cosine
        similarity and no gradient).
    labels : torch.Tensor
        ``[B]`` integer speaker labels.
    strategy : str
        ``"random"`` (one random positive and negative per anchor),
        ``"semihard"`` (every anchor-positive pair; the most similar
        negative with ``SAP - margin < SAN < SAP``, else the most similar
        negative) or ``"hardest"`` (per anchor, the least similar positive
        and the most similar negative).
    margin : float
        The triplet margin (used by ``"semihard"``).
    generator : torch.Generator, optional
        Random generator for ``"random"`` (default: the global one).

    Returns
    -------
    tuple of torch.Tensor
        Three ``[N]`` long tensors: anchor, positive and negative indices.

    Example
    -------
    >>> emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> a, p, n = mine_triplets(emb, labels, "hardest")
    >>> a.tolist(), p.tolist(), n.tolist()
    ([0, 1, 2, 3], [1, 0, 3, 2], [2, 2, 1, 1])
    """
    if strategy not in MINING_STRATEGIES:
        raise ConfigError(
            f"unknown mining strategy {strategy!r}; choose one of "
            f"{', '.join(MINING_STRATEGIES)}"
        )
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            "expected embeddings [B, D] and labels [B], got "
            f"{tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    device = embeddings.device
    labels = labels.to(device)
    with torch.no_grad():
        sim = cosine_matrix(embeddings.detach().float())
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(len(labels), dtype=torch.bool, device=device)
        pos_mask = same & ~eye
        neg_mask = ~same
        valid = pos_mask.any(1) & neg_mask.any(1)
        anchors = torch.nonzero(valid).flatten()
        if strategy == "random":
            return _mine_random(anchors, pos_mask, neg_mask, generator)
        if strategy == "hardest":
            pos_sim = sim.masked_fill(~pos_mask, float("inf"))
            neg_sim = sim.masked_fill(~neg_mask, float("-inf"))
            positives = pos_sim.argmin(1)[anchors]
            negatives = neg_sim.argmax(1)[anchors]
            return anchors, positives, negatives
        return _mine_semihard(sim, anchors, pos_mask, neg_mask, margin)


def _mine_random(
    anchors: torch.Tensor,
    pos_mask: torch.Tensor,
    neg_mask: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One uniformly drawn positive and negative per anchor."""
    noise = torch.rand(
        pos_mask.shape, generator=generator, device=pos_mask.device
    )
    # Random scores where allowed, -1 elsewhere: argmax draws uniformly.
    positives = noise.masked_fill(~pos_mask, -1.0).argmax(1)[anchors]
    noise = torch.rand(
        neg_mask.shape, generator=generator, device=neg_mask.device
    )
    negatives = noise.masked_fill(~neg_mask, -1.0).argmax(1)[anchors]
    return anchors, positives, negatives


def _mine_semihard(
    sim: torch.Tensor,
    anchors: torch.Tensor,
    pos_mask: torch.Tensor,
    neg_mask: torch.Tensor,
    margin: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FaceNet semi-hard negatives for every anchor-positive pair."""
    keep = torch.zeros_like(pos_mask)
    keep[anchors] = True
    a_idx, p_idx = torch.nonzero(pos_mask & keep, as_tuple=True)
    sap = sim[a_idx, p_idx].unsqueeze(1)  # [N, 1]
    san = sim[a_idx]  # [N, B]
    negs = neg_mask[a_idx]
    semi = negs & (san < sap) & (san > sap - margin)
    # The most similar semi-hard negative; the hardest when there is none.
    semi_choice = san.masked_fill(~semi, float("-inf")).argmax(1)
    hard_choice = san.masked_fill(~negs, float("-inf")).argmax(1)
    n_idx = torch.where(semi.any(1), semi_choice, hard_choice)
    return a_idx, p_idx, n_idx


def collapse_warning(
    sap: float, san: float, loss: float, margin: float, near: float = 0.95
) -> str | None:
    """Says when a triplet epoch's statistics show collapsed embeddings.

    Collapse (every embedding alike, the failure most reported by users of
    the original implementation) shows as SAP and SAN both near 1, or as
    a mean loss stuck near the margin (SAN about SAP for the mined
    triplets: batch-hard mining on the benchmark corpus went there, with
    SAP 0.94, SAN 0.92 and a loss of 0.185 at margin 0.2).

    Arguments
    ---------
    sap, san : float
        The epoch's mean anchor-positive and anchor-negative cosines.
    loss : float
        The epoch's mean triplet loss.
    margin : float
        The triplet margin.
    near : float
        SAP and SAN above it count as "near 1".

    Returns
    -------
    str or None
        The warning, or None when the epoch looks healthy.

    Example
    -------
    >>> collapse_warning(0.9, 0.2, 0.01, 0.1) is None
    True
    >>> collapse_warning(0.99, 0.98, 0.09, 0.1)[:31]
    'the embeddings collapsed: SAP 0'
    >>> collapse_warning(0.946, 0.925, 0.185, 0.2)[:31]
    'the embeddings collapsed: loss '
    """
    if sap > near and san > near:
        why = f"SAP {sap:.3f} and SAN {san:.3f} are both near 1"
    elif margin > 0 and loss >= 0.9 * margin:
        why = f"loss {loss:.4f} stuck near the margin {margin:g}"
    else:
        return None
    return (
        f"the embeddings collapsed: {why}; lower the lr, use mining: "
        "semihard or random, or start from a better softmax checkpoint"
    )


class TripletLoss(torch.nn.Module):
    """Mines triplets in a batch and applies :func:`triplet_loss`.

    Arguments
    ---------
    margin : float
        The margin alpha (0.1 in Deep Speaker).
    mining : str
        ``"random"``, ``"semihard"`` or ``"hardest"``
        (see :func:`mine_triplets`).

    Example
    -------
    >>> loss_fn = TripletLoss(margin=0.1, mining="hardest")
    >>> emb = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    >>> labels = torch.tensor([0, 0, 1, 1, 2, 2])
    >>> stats = loss_fn(emb, labels)
    >>> stats.loss.shape, bool(stats.loss >= 0)
    (torch.Size([]), True)
    """

    def __init__(self, margin: float = 0.1, mining: str = "random") -> None:
        super().__init__()
        if mining not in MINING_STRATEGIES:
            raise ConfigError(
                f"unknown mining strategy {mining!r}; choose one of "
                f"{', '.join(MINING_STRATEGIES)}"
            )
        if margin < 0:
            raise ConfigError(f"the margin must be >= 0, got {margin}")
        self.margin = margin
        self.mining = mining

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> TripletStats:
        """Mines triplets among ``embeddings [B, D]`` with ``labels [B]``
        and returns the loss with mean SAP and SAN."""
        a, p, n = mine_triplets(
            embeddings, labels, strategy=self.mining, margin=self.margin
        )
        return triplet_loss(
            embeddings[a], embeddings[p], embeddings[n], margin=self.margin
        )

    def extra_repr(self) -> str:
        """Shown by ``print(module)``."""
        return f"margin={self.margin}, mining={self.mining!r}"


class SpeakerSoftmaxLoss(torch.nn.Module):
    """Speaker classification loss on cosines: scaled softmax or AAM.

    ``"softmax"``: cross-entropy of ``scale * cos`` (NormFace, the scaled
    cosine softmax).  ``"aam"``: additive angular margin (ArcFace):
    the target class's cosine becomes ``cos(theta + margin)`` before the
    scaling (SpeechBrain's ``AdditiveAngularMargin``), which pulls each
    speaker's embeddings closer together than the plain softmax does.

    Arguments
    ---------
    loss : str
        ``"softmax"`` or ``"aam"``.
    margin : float
        The angular margin of ``"aam"`` (radians).
    scale : float
        The logit scale (inverse temperature).

    Example
    -------
    >>> cosines = torch.tensor([[0.8, 0.1], [0.2, 0.6]])
    >>> targets = torch.tensor([[0], [1]])
    >>> plain = SpeakerSoftmaxLoss("softmax", scale=10.0)(cosines, targets)
    >>> aam = SpeakerSoftmaxLoss("aam", margin=0.2, scale=10.0)(
    ...     cosines, targets)
    >>> bool(aam > plain)  # the margin makes the same cosines cost more
    True
    >>> want = torch.nn.functional.cross_entropy(10.0 * cosines,
    ...                                          targets[:, 0])
    >>> bool(torch.isclose(plain, want))
    True
    """

    def __init__(
        self, loss: str = "softmax", margin: float = 0.2, scale: float = 16.0
    ) -> None:
        super().__init__()
        if loss not in PRETRAIN_LOSSES:
            raise ConfigError(
                f"pretrain_loss must be one of {', '.join(PRETRAIN_LOSSES)}, "
                f"got {loss!r}"
            )
        if margin < 0 or scale <= 0:
            raise ConfigError(
                f"the margin must be >= 0 and the scale > 0, got {margin}, "
                f"{scale}"
            )
        self.loss = loss
        self.scale = float(scale)
        self.aam = (
            AdditiveAngularMargin(margin=margin, scale=scale)
            if loss == "aam"
            else None
        )

    def forward(self, cosines: torch.Tensor, targets: torch.Tensor):
        """``cosines`` ``[B, n_classes]``, ``targets`` ``[B, 1]`` (class
        indices) -> the mean loss."""
        targets = targets.reshape(-1).long()
        if self.aam is None:
            logits = self.scale * cosines.float()
        else:
            one_hot = torch.nn.functional.one_hot(targets, cosines.shape[1])
            logits = self.aam(cosines, one_hot.float())
        return torch.nn.functional.cross_entropy(logits, targets)


def no_speaker_loss(cosines: torch.Tensor, scale: float) -> torch.Tensor:
    """Cross-entropy of non-speech examples against a "no speaker" class.

    The extra class has a fixed logit of 0 (cosine 0), so the loss
    ``log(1 + sum_j exp(scale * cos_j))`` pushes a non-speech embedding
    below cosine 0 to every speaker's weight vector: non-speech lands
    away from all speakers, with no extra weights to train or export.

    Arguments
    ---------
    cosines : torch.Tensor
        ``[n, n_speakers]`` cosines of non-speech embeddings with the
        speakers (:class:`~deep_speaker_sb.brains.softmax.
        SpeakerClassifier`).
    scale : float
        The logit scale (that of :class:`SpeakerSoftmaxLoss`).

    Returns
    -------
    torch.Tensor
        The mean loss (a scalar).

    Example
    -------
    >>> far = no_speaker_loss(torch.full((2, 3), -1.0), scale=16.0)
    >>> near = no_speaker_loss(torch.full((2, 3), 0.9), scale=16.0)
    >>> bool(far < 1e-5), round(float(near), 2)
    (True, 15.5)
    """
    logits = scale * cosines.float()
    zero = logits.new_zeros(len(logits), 1)
    return torch.logsumexp(torch.cat([logits, zero], dim=1), dim=1).mean()
