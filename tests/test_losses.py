"""Triplet loss values and mining choices on hand-made embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from deep_speaker_sb.losses import (
    TripletLoss,
    mine_triplets,
    triplet_loss,
)
from deep_speaker_sb.scoring import cosine_matrix


def unit(*angles_deg: float) -> torch.Tensor:
    """2-D unit vectors at the given angles (cosines are easy to read)."""
    rad = torch.tensor(angles_deg) * math.pi / 180
    return torch.stack([torch.cos(rad), torch.sin(rad)], dim=1)


def test_loss_values_by_hand():
    # cos(0, 60) = 0.5, cos(0, 90) = 0: SAN - SAP + 0.1 = -0.4 -> 0
    # cos(0, 60) = 0.5, cos(0, 45) = 0.7071: 0.7071 - 0.5 + 0.1 = 0.3071
    anchor = unit(0, 0)
    positive = unit(60, 60)
    negative = unit(90, 45)
    stats = triplet_loss(anchor, positive, negative, margin=0.1)
    expected = (0.0 + (math.sqrt(0.5) - 0.5 + 0.1)) / 2
    assert stats.loss.item() == pytest.approx(expected, abs=1e-6)
    assert stats.sap.item() == pytest.approx(0.5, abs=1e-6)
    assert stats.san.item() == pytest.approx(math.sqrt(0.5) / 2, abs=1e-6)


def test_loss_is_cosine_not_dot_product():
    # Scaling the embeddings changes nothing.
    a, p, n = unit(0), unit(30), unit(50)
    base = triplet_loss(a, p, n, margin=0.2).loss
    scaled = triplet_loss(3 * a, 0.5 * p, 7 * n, margin=0.2).loss
    assert scaled.item() == pytest.approx(base.item(), abs=1e-6)


def test_loss_zero_when_margin_met_and_margin_when_equal():
    a, p, n = unit(0), unit(10), unit(120)
    assert triplet_loss(a, p, n).loss.item() == 0.0
    assert triplet_loss(a, a, a, margin=0.3).loss.item() == pytest.approx(0.3)


def test_loss_gradient_and_empty_batch():
    a = unit(0).requires_grad_()
    stats = triplet_loss(a, unit(80), unit(20), margin=0.1)
    stats.loss.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    empty = torch.zeros(0, 2, requires_grad=True)
    stats = triplet_loss(empty, empty, empty)
    assert stats.loss.item() == 0.0 and math.isnan(stats.sap.item())
    stats.loss.backward()


def test_cosine_matrix_diagonal_is_one():
    sim = cosine_matrix(torch.randn(5, 7))
    assert torch.allclose(torch.diagonal(sim), torch.ones(5), atol=1e-6)


# A constructed batch: speaker 0 at angles 0, 10, 40; speaker 1 at 45, 100,
# speaker 2 at 170.  Cosines from anchor 0 (angle 0):
#   positives: idx1 (10 deg) cos .985, idx2 (40 deg) cos .766
#   negatives: idx3 (45 deg) cos .707, idx4 (100) -.17, idx5 (170) -.98
ANGLES = (0, 10, 40, 45, 100, 170)
LABELS = torch.tensor([0, 0, 0, 1, 1, 2])


def triplets_of(strategy, margin=0.1, **kw):
    a, p, n = mine_triplets(
        unit(*ANGLES), LABELS, strategy=strategy, margin=margin, **kw
    )
    return list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))


def test_hardest_mining_batch_hard():
    got = triplets_of("hardest")
    # Speaker 2 (idx 5) has no positive: never an anchor.
    assert [t[0] for t in got] == [0, 1, 2, 3, 4]
    # Anchor 0: least similar positive is 2, most similar negative is 3.
    assert got[0] == (0, 2, 3)
    # Anchor 3 (45): only positive 4; most similar negative is 2 (40 deg).
    assert got[3] == (3, 4, 2)
    # Anchor 4 (100): positive 3; nearest negative is 2 (60 deg away).
    assert got[4] == (4, 3, 2)


def test_semihard_mining_picks_within_margin_else_hardest():
    got = {(a, p): n for a, p, n in triplets_of("semihard", margin=0.1)}
    # Every anchor-positive pair of speakers with >= 2 items.
    assert set(got) == {
        (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)
    }  # fmt: skip
    # (0, 2): SAP = cos40 = .766; negative 3 has SAN = cos45 = .707, which
    # lies in (SAP - 0.1, SAP): semi-hard.
    assert got[(0, 2)] == 3
    # (0, 1): SAP = cos10 = .985; no negative in (.885, .985): fallback to
    # the hardest negative (3, the most similar).
    assert got[(0, 1)] == 3
    # (2, 0): anchor at 40, SAP = cos40 = .766; negatives: 3 at 5 deg
    # (.996, harder than the positive, not semi-hard), 4 at 60 deg (.5),
    # 5 at 130 deg: none in (.666, .766) -> hardest = 3.
    assert got[(2, 0)] == 3
    # With a wide margin, (2, 0) finds negative 4 (SAN .5 in (.266, .766)).
    wide = {(a, p): n for a, p, n in triplets_of("semihard", margin=0.5)}
    assert wide[(2, 0)] == 4


def test_semihard_prefers_most_similar_semihard_negative():
    # Anchor 0, positive at 30 deg (SAP .866); negatives at 35 (.819) and
    # 40 (.766), both within margin 0.2: the more similar one (35) wins.
    emb = unit(0, 30, 35, 40)
    labels = torch.tensor([0, 0, 1, 2])
    a, p, n = mine_triplets(emb, labels, "semihard", margin=0.2)
    triplets = {
        (ai, pi): ni
        for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True)
    }
    assert triplets[(0, 1)] == 2


def test_random_mining_respects_labels_and_varies():
    emb = torch.randn(12, 4)
    labels = torch.arange(4).repeat_interleave(3)
    seen_pos, seen_neg = set(), set()
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        a, p, n = mine_triplets(emb, labels, "random", generator=g)
        assert a.tolist() == list(range(12))
        assert torch.all(labels[a] == labels[p]) and torch.all(a != p)
        assert torch.all(labels[a] != labels[n])
        seen_pos.add(p[0].item())
        seen_neg.add(n[0].item())
    assert seen_pos == {1, 2}
    assert len(seen_neg) > 3


def test_unknown_strategy_and_module():
    with pytest.raises(ValueError, match="unknown mining strategy"):
        mine_triplets(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), "x")
    with pytest.raises(ValueError, match="unknown mining strategy"):
        TripletLoss(mining="hard")
    emb = unit(*ANGLES).requires_grad_()
    stats = TripletLoss(margin=0.1, mining="hardest")(emb, LABELS)
    stats.loss.backward()
    # Batch-hard triplets (anchor, positive, negative) by hand: see
    # test_hardest_mining_batch_hard; anchors 1 (10 deg) and 2 (40 deg)
    # take positive 2 / 0 and negative 3 (45 deg).
    triplets = [(0, 2, 3), (1, 2, 3), (2, 0, 3), (3, 4, 2), (4, 3, 2)]

    def cos(i, j):
        return math.cos(math.radians(ANGLES[i] - ANGLES[j]))

    want = sum(
        max(cos(a, n) - cos(a, p) + 0.1, 0.0) for a, p, n in triplets
    ) / len(triplets)
    assert stats.loss.item() == pytest.approx(want, abs=1e-6)
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_speaker_softmax_loss_aam_by_hand():
    from deep_speaker_sb.errors import ConfigError
    from deep_speaker_sb.losses import SpeakerSoftmaxLoss

    cosines = torch.tensor([[0.5, 0.0, -0.5]])
    target = torch.tensor([[0]])
    # aam: the target's angle 60 degrees grows by the margin (0.3 rad)
    theta = math.acos(0.5) + 0.3
    logits = 8.0 * torch.tensor([[math.cos(theta), 0.0, -0.5]])
    want = torch.nn.functional.cross_entropy(logits, target[0])
    got = SpeakerSoftmaxLoss("aam", margin=0.3, scale=8.0)(cosines, target)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # with no margin, aam is the scaled cosine softmax
    plain = SpeakerSoftmaxLoss("softmax", scale=8.0)(cosines, target)
    no_margin = SpeakerSoftmaxLoss("aam", margin=0.0, scale=8.0)
    assert no_margin(cosines, target).item() == pytest.approx(
        plain.item(), rel=1e-5
    )
    with pytest.raises(ConfigError, match="softmax, aam"):
        SpeakerSoftmaxLoss("arcface")
