"""Score plots of a verification run: histograms, the DET curve and the
reliability diagram of calibrated scores.

Both are written as PNG files atomically (matplotlib's Agg backend, so no
display is needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from deep_speaker_sb.calibration import posterior
from deep_speaker_sb.scoring import (
    det_curve,
    split_scores,
    verification_metrics,
)
from deep_speaker_sb.utils import Pathlike, atomic_write


def _probit(p: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.special.ndtri(p.double().clamp(eps, 1 - eps))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(
    fig,
    ax,
    path: Pathlike,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    legend_loc: str = "best",
    grid: bool = True,
) -> Path:
    """Labels, title, grid and legend of ``ax``; saves ``fig`` as a PNG at
    ``path`` (atomically) and returns the path."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if grid:
        ax.grid(True, alpha=0.4)
    ax.legend(loc=legend_loc)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def plot_score_histograms(
    labels: Sequence[int] | torch.Tensor,
    scores: torch.Tensor,
    path: Pathlike,
    threshold: float | None = None,
    title: str = "Trial scores",
) -> Path:
    """Target / non-target score histograms, saved as a PNG (atomically).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "hist.png"
    >>> _ = plot_score_histograms([1, 1, 0, 0], torch.tensor([.9, .7, .2, .4]),
    ...                           p, threshold=0.5)
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    plt = _pyplot()
    pos, neg = split_scores(labels, scores)
    lo = float(torch.cat([pos, neg]).min())
    hi = float(torch.cat([pos, neg]).max())
    bins = torch.linspace(lo, hi if hi > lo else lo + 1e-3, 41).numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.hist(
            neg.numpy(),
            bins=bins,
            alpha=0.6,
            density=True,
            label=f"non-target ({len(neg)})",
        )
        ax.hist(
            pos.numpy(),
            bins=bins,
            alpha=0.6,
            density=True,
            label=f"target ({len(pos)})",
        )
        if threshold is not None:
            ax.axvline(
                threshold,
                color="k",
                linestyle="--",
                label=f"threshold {threshold:.3f}",
            )
        return _finish(
            fig,
            ax,
            path,
            title=title,
            xlabel="score",
            ylabel="density",
            grid=False,
        )
    finally:
        plt.close(fig)


def plot_det(
    labels: Sequence[int] | torch.Tensor,
    scores: torch.Tensor,
    path: Pathlike,
    title: str = "DET curve",
) -> Path:
    """DET curve (miss vs. false alarm on probit axes), saved as a PNG.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "det.png"
    >>> _ = plot_det([1, 1, 0, 0], torch.tensor([.9, .3, .5, .1]), p)
    >>> p.stat().st_size > 0
    True
    """
    plt = _pyplot()
    labels_t = torch.as_tensor(labels).bool().flatten()
    n = min(int(labels_t.sum()), int((~labels_t).sum()))
    eps = 0.5 / max(n, 1)
    p_miss, p_fa = det_curve(labels, scores)
    eer = verification_metrics(labels, scores)["eer"]
    top = 0.5 if eer < 0.3 else 0.9  # upper axis limit
    ticks = [
        t
        for t in (
            0.001,
            0.002,
            0.005,
            0.01,
            0.02,
            0.05,
            0.1,
            0.2,
            0.4,
            0.6,
            0.8,
        )
        if eps <= t <= top
    ]
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        ax.plot(
            _probit(p_fa, eps).numpy(),
            _probit(p_miss, eps).numpy(),
            label="system",
        )
        ax.plot(
            *[float(_probit(torch.tensor([eer]), eps))] * 2,
            "o",
            label=f"EER {100 * eer:.2f}%",
        )
        pos = _probit(torch.tensor(ticks), eps).numpy()
        names = [f"{100 * t:g}" for t in ticks]
        ax.set_xticks(pos, names)
        ax.set_yticks(pos, names)
        lim = float(_probit(torch.tensor([top]), eps))
        low = float(_probit(torch.tensor([eps]), eps))
        ax.set_xlim(low, lim)
        ax.set_ylim(low, lim)
        return _finish(
            fig,
            ax,
            path,
            title=title,
            xlabel="false alarm probability (%)",
            ylabel="miss probability (%)",
            legend_loc="lower left",
        )
    finally:
        plt.close(fig)


def reliability_bins(
    labels: Sequence[int] | torch.Tensor,
    llrs: torch.Tensor,
    n_bins: int = 10,
) -> list[tuple[float, float, int]]:
    """The points of a reliability diagram of LLRs.

    Each LLR becomes a posterior at the trials' own proportion of targets
    (so that a calibrated system has posteriors equal to the observed
    frequencies); the posteriors are cut into ``n_bins`` equal-width bins.

    Returns
    -------
    list of (mean posterior, fraction of targets, trials)
        One per non-empty bin, in order.

    Example
    -------
    >>> bins = reliability_bins([1, 0, 1, 0], torch.tensor([5., -5., 0., 0.]))
    >>> [(round(p, 3), f, n) for p, f, n in bins]
    [(0.007, 0.0, 1), (0.5, 0.5, 2), (0.993, 1.0, 1)]
    """
    labels_t = torch.as_tensor(labels).bool().flatten()
    prior = float(labels_t.float().mean())
    if not 0.0 < prior < 1.0:
        raise ValueError("a reliability diagram needs both kinds of trial")
    post = torch.as_tensor(
        posterior(torch.as_tensor(llrs).double().numpy(), prior)
    ).flatten()
    which = (post * n_bins).long().clamp(0, n_bins - 1)
    out = []
    for k in range(n_bins):
        mask = which == k
        n = int(mask.sum())
        if n:
            frac = float(labels_t[mask].float().mean())
            out.append((float(post[mask].mean()), frac, n))
    return out


def plot_reliability(
    labels: Sequence[int] | torch.Tensor,
    llrs: torch.Tensor,
    path: Pathlike,
    title: str = "Reliability diagram",
) -> Path:
    """Reliability diagram of calibrated LLRs (:func:`reliability_bins`:
    predicted posterior vs. observed fraction of same-speaker trials; a
    calibrated system lies on the diagonal), saved as a PNG.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "reliability.png"
    >>> _ = plot_reliability([1, 1, 0, 0], torch.tensor([2., .5, -1., .2]), p)
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    plt = _pyplot()
    bins = reliability_bins(labels, llrs)
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
        ax.plot(
            [b[0] for b in bins],
            [b[1] for b in bins],
            "o-",
            label="system",
        )
        for p, f, n in bins:
            ax.annotate(
                str(n),
                (p, f),
                fontsize=7,
                xytext=(3, -9),
                textcoords="offset points",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        return _finish(
            fig,
            ax,
            path,
            title=title,
            xlabel="predicted P(same speaker) at the trials' prior",
            ylabel="observed fraction of same-speaker trials",
            legend_loc="upper left",
        )
    finally:
        plt.close(fig)
