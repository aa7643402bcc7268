"""How alike two saliency maps are: Spearman rank correlation, SSIM, top-k overlap.

The measures of the randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018), each over the pixels of two (H, W) maps of the same size:

* **Spearman**: the Pearson correlation of the two maps' ranks, tied values sharing their
  average rank (as ``scipy.stats.spearmanr``). A constant map has no ranking; its correlation
  with anything is reported as 0 (scipy would give NaN).
* **SSIM** (Wang et al., 2004): each map divided by its own maximum (so both lie in [0, 1];
  an all-zero map stays zero), then local means, variances and covariance under an 11 x 11
  Gaussian window (sigma 1.5), C1 = (0.01)^2, C2 = (0.03)^2, averaged over the positions where
  the window lies inside the map. This is ``skimage.metrics.structural_similarity(a, b,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
* **Top-k overlap**: the share of the ``fraction`` most salient pixels of one map that are also
  among the other's (ties broken in raster order).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["spearman", "ssim", "topk_overlap"]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # window radius = int(3.5 * 1.5 + 0.5) = 5, an 11 x 11 window


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (H, W) maps as float64 CPU tensors, checked to be finite and of one shape."""
    for value in (a, b):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"maps must be torch tensors, got {type(value).__name__}")
    if a.dim() != 2 or a.shape != b.shape or a.numel() == 0:
        raise ValueError(
            f"expected two (H, W) maps of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    x, y = a.detach().cpu().double(), b.detach().cpu().double()
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("maps contain NaN or infinite values")
    return x, y


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of a 1-D tensor, tied values given their average rank."""
    order = torch.argsort(values, stable=True)
    ordered = values[order]
    # Runs of equal values: each run gets the mean of the positions it spans.
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    run = torch.cumsum(starts.long(), 0) - 1
    first = torch.nonzero(starts).flatten()
    last = torch.cat([first[1:], torch.tensor([len(values)])]) - 1
    average = (first + last).double() / 2 + 1
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = average[run]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two (H, W) maps over their pixels (0 if either is constant)."""
    x, y = _pair(a, b)
    rx, ry = _ranks(x.flatten()), _ranks(y.flatten())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    if norm == 0.0:
        return 0.0
    return float((rx * ry).sum()) / norm


def _scaled(x: torch.Tensor) -> torch.Tensor:
    """``x`` divided by its maximum (maps are >= 0 after ReLU; an all-zero map stays zero)."""
    top = float(x.max())
    return x / top if top > 0 else torch.zeros_like(x)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (H, W) maps, each scaled to [0, 1] by its maximum (see the module).

    Maps smaller than the 11 x 11 window use the largest odd window that fits.
    """
    x, y = _pair(a, b)
    x, y = _scaled(x.clamp_min(0)), _scaled(y.clamp_min(0))
    radius = min(int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5), (min(x.shape) - 1) // 2)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    kernel = kernel / kernel.sum()
    rows, cols = kernel.view(1, 1, -1, 1), kernel.view(1, 1, 1, -1)

    def mean(z: torch.Tensor) -> torch.Tensor:
        # "valid" filtering: only the positions where the window lies inside the map, which
        # is what skimage averages over (it crops the window's radius from every side).
        return F.conv2d(F.conv2d(z.view(1, 1, *z.shape), rows), cols)[0, 0]

    c1, c2 = 0.01**2, 0.03**2
    mx, my = mean(x), mean(y)
    vx = mean(x * x) - mx * mx
    vy = mean(y * y) - my * my
    cov = mean(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(value.mean())


def topk_overlap(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.1) -> float:
    """Share of ``a``'s top ``fraction`` of pixels that are also among ``b``'s (0..1)."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
        raise TypeError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    x, y = _pair(a, b)
    k = max(1, round(fraction * x.numel()))
    top_x = torch.argsort(-x.flatten(), stable=True)[:k]
    top_y = torch.argsort(-y.flatten(), stable=True)[:k]
    shared = torch.isin(top_x, top_y).sum()
    return int(shared) / k
