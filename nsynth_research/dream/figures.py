"""Pictures of dreams: spectrograms (one, a grid, before/after) and first-layer kernels.

Spectrograms are drawn as the log-magnitude features the dream decodes to (train mean +
normalised input x std), time across and frequency up, on one colour scale within a figure,
so what is seen is what is heard. Every figure is drawn in matplotlib's default style, so a
style set elsewhere in the process cannot change a logged picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nsynth_research.instruments.config import SAMPLE_RATE, FeatureConfig


def _extent(cfg: FeatureConfig, frames: int) -> tuple[float, float, float, float]:
    seconds = frames * cfg.hop_length / SAMPLE_RATE
    return (0.0, seconds, 0.0, SAMPLE_RATE / 2000 if cfg.kind == "stft" else float(cfg.bins))


def _freq_label(cfg: FeatureConfig) -> str:
    return "kHz" if cfg.kind == "stft" else "mel band"


def _draw(ax: plt.Axes, feats: np.ndarray, cfg: FeatureConfig, vmax: float) -> plt.Artist:
    return ax.imshow(
        np.asarray(feats).T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=0.0,
        vmax=vmax,
        extent=_extent(cfg, feats.shape[0]),
        interpolation="nearest",
    )


def spectrogram_figure(feats: np.ndarray, cfg: FeatureConfig, title: str) -> plt.Figure:
    """One log-magnitude spectrogram (frames, bins)."""
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(6, 3.2), constrained_layout=True)
        image = _draw(ax, feats, cfg, float(np.max(feats)) or 1.0)
        ax.set(title=title, xlabel="time (s)", ylabel=_freq_label(cfg))
        fig.colorbar(image, ax=ax, label="log(1 + scale |S|)")
    return fig


def grid_figure(
    panels: Sequence[np.ndarray], titles: Sequence[str], cfg: FeatureConfig, title: str
) -> plt.Figure:
    """Spectrograms on one shared colour scale, four to a row, each named."""
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    vmax = max(float(np.max(p)) for p in panels) or 1.0
    with plt.style.context("default"):
        fig, axes = plt.subplots(
            rows,
            cols,
            figsize=(3.6 * cols, 2.6 * rows + 0.6),
            squeeze=False,
            constrained_layout=True,
        )
        image = None
        for ax, feats, name in zip(axes.flat, panels, titles, strict=False):
            image = _draw(ax, feats, cfg, vmax)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("time (s)", fontsize=8)
            ax.set_ylabel(_freq_label(cfg), fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in axes.flat[len(panels) :]:
            ax.axis("off")
        fig.suptitle(title)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.6, label="log(1 + scale |S|)")
    return fig


def kernel_figure(kernel: np.ndarray, title: str) -> plt.Figure:
    """A conv kernel (time, frequency, in, out) as one small image per output channel.

    Each kernel is drawn on its own symmetric colour scale (red +, blue -): filters differ in
    norm, and a shared scale would show only the strongest few.
    """
    k = np.asarray(kernel)[:, :, 0, :]  # the first conv reads one input channel
    n = k.shape[-1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    with plt.style.context("default"):
        fig, axes = plt.subplots(
            rows,
            cols,
            figsize=(1.6 * cols, 1.1 * rows + 0.6),
            squeeze=False,
            constrained_layout=True,
        )
        for c, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= n:
                ax.axis("off")
                continue
            w = k[..., c]
            lim = float(np.max(np.abs(w))) or 1.0
            ax.imshow(
                w.T,
                origin="lower",
                aspect="auto",
                cmap="RdBu_r",
                vmin=-lim,
                vmax=lim,
                interpolation="nearest",
            )
            ax.set_title(str(c), fontsize=7, pad=2)
        fig.suptitle(f"{title}  (time across, frequency up; each on its own scale)")
    return fig


def channel_grid_figure(
    panels: dict[str, list[tuple[int, np.ndarray]]], cfg: FeatureConfig
) -> plt.Figure:
    """Inputs maximising channels: one row per layer, one column per channel."""
    rows = len(panels)
    cols = max(len(v) for v in panels.values())
    vmax = max(float(np.max(x)) for v in panels.values() for _, x in v) or 1.0
    with plt.style.context("default"):
        fig, axes = plt.subplots(
            rows,
            cols,
            figsize=(3.2 * cols, 2.3 * rows + 0.6),
            squeeze=False,
            constrained_layout=True,
        )
        for r, (layer, items) in enumerate(panels.items()):
            for c in range(cols):
                ax = axes[r, c]
                if c >= len(items):
                    ax.axis("off")
                    continue
                channel, feats = items[c]
                _draw(ax, feats, cfg, vmax)
                ax.set_title(f"{layer} channel {channel}", fontsize=9)
                ax.tick_params(labelsize=7)
        fig.suptitle("Inputs that maximise selected channels (log-magnitude)")
    return fig
