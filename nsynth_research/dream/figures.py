"""Pictures of dreams: page thumbnails, grids, channel rows, first-layer kernels.

Spectrograms are drawn as the log-magnitude features the dream decodes to (train mean +
normalised input x std), time across and frequency up, and every spectrogram of a run on
one colour scale (`Scale`): 0 (silence) to the largest value of any real validation note or
dream shown, so a faint pattern is drawn faint and a dream is compared with notes as loud as
it. A flagged dream is drawn hatched over grey with its flag, never as a clean picture.
Figures use the project's plain style, so a style set elsewhere cannot change them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.image import AxesImage
from PIL import Image

from nsynth_research.core.plotstyle import figure_style
from nsynth_research.instruments.config import SAMPLE_RATE, FeatureConfig

CMAP = "magma"
FEATURE_LABEL = "log(1 + scale |S|)"


@dataclass(frozen=True)
class Scale:
    """The one colour scale of a run's spectrograms."""

    vmax: float

    @classmethod
    def of(cls, arrays: Sequence[np.ndarray]) -> Scale:
        return cls(max((float(np.max(a)) for a in arrays), default=1.0) or 1.0)


@dataclass(frozen=True)
class Panel:
    """One spectrogram of a figure: features (frames, bins), its title and its flag."""

    feats: np.ndarray
    title: str
    flag: str = ""


def _extent(cfg: FeatureConfig, frames: int) -> tuple[float, float, float, float]:
    seconds = frames * cfg.hop_length / SAMPLE_RATE
    return (0.0, seconds, 0.0, SAMPLE_RATE / 2000 if cfg.kind == "stft" else float(cfg.bins))


def _freq_label(cfg: FeatureConfig) -> str:
    return "kHz" if cfg.kind == "stft" else "mel band"


def _draw(ax: plt.Axes, panel: Panel, cfg: FeatureConfig, scale: Scale) -> AxesImage:
    image = ax.imshow(
        np.asarray(panel.feats).T,
        origin="lower",
        aspect="auto",
        cmap=CMAP,
        vmin=0.0,
        vmax=scale.vmax,
        extent=_extent(cfg, panel.feats.shape[0]),
        interpolation="nearest",
        alpha=0.25 if panel.flag else 1.0,
    )
    if panel.flag:
        ax.set_facecolor("#bbbbbb")
        ax.text(
            0.5,
            0.5,
            "FAILED\n" + panel.flag,
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=7,
            color="#a00000",
            wrap=True,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#a00000"},
        )
    ax.set_title(panel.title, fontsize=8)
    ax.tick_params(labelsize=7)
    return image


def panel_grid(
    rows: int, cols: int, width: float, height: float, colorbar: bool = True
) -> tuple[plt.Figure, np.ndarray, plt.Axes | None]:
    """A figure of rows x cols panels sharing both axes, laid out by fixed margins (a layout
    engine spends seconds per figure on dozens of panels), with a colour-bar axis."""
    fig_w = cols * width + (1.6 if colorbar else 0.9)
    fig_h = rows * height + 0.9
    fig, axes = plt.subplots(
        rows, cols, figsize=(fig_w, fig_h), squeeze=False, sharex=True, sharey=True
    )
    right = 1 - (1.3 if colorbar else 0.2) / fig_w
    fig.subplots_adjust(
        left=0.7 / fig_w,
        right=right,
        bottom=0.55 / fig_h,
        top=1 - 0.6 / fig_h,
        wspace=0.08,
        hspace=0.45,
    )
    for ax in axes.flat:
        ax.label_outer()
    cax = fig.add_axes((1 - 1.05 / fig_w, 0.55 / fig_h, 0.14 / fig_w, 1 - 1.15 / fig_h))
    if not colorbar:
        cax.remove()
    return fig, axes, cax if colorbar else None


def label_grid(axes: np.ndarray, used: int, xlabel: str, ylabel: str) -> None:
    """Hide the panels past `used` and label the lowest visible panel of each column."""
    rows, cols = axes.shape
    for k, ax in enumerate(axes.flat):
        if k >= used:
            ax.set_visible(False)
    for c in range(cols):
        visible = [r for r in range(rows) if r * cols + c < used]
        if visible:
            ax = axes[visible[-1], c]
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(xlabel, fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)


def thumbnail(feats: np.ndarray, scale: Scale, size: tuple[int, int] = (224, 112)) -> bytes:
    """A small PNG of one spectrogram on the run's scale (no axes: the page labels it)."""
    rgba = plt.get_cmap(CMAP)(np.clip(np.asarray(feats).T[::-1] / scale.vmax, 0.0, 1.0))
    pixels = (rgba[..., :3] * 255).astype(np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
    # 64 colours of one colour map lose nothing visible and make the page several times smaller.
    image = image.quantize(64)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def colorbar_png(scale: Scale) -> bytes:
    """The run's colour scale as a small labelled bar for the page."""
    with figure_style():
        fig, ax = plt.subplots(figsize=(4.0, 0.55), constrained_layout=True)
        fig.colorbar(
            plt.cm.ScalarMappable(matplotlib.colors.Normalize(0.0, scale.vmax), CMAP),
            cax=ax,
            orientation="horizontal",
            label=FEATURE_LABEL,
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
    return buffer.getvalue()


def grid_figure(
    panels: Sequence[Panel], cfg: FeatureConfig, scale: Scale, title: str, cols: int = 4
) -> plt.Figure:
    """Spectrograms on the run's colour scale, `cols` to a row, each named (and flagged)."""
    cols = max(1, min(cols, len(panels)))
    rows = math.ceil(len(panels) / cols)
    with figure_style():
        fig, axes, cax = panel_grid(rows, cols, 2.6, 1.7)
        image = None
        for ax, panel in zip(axes.flat, panels, strict=False):
            image = _draw(ax, panel, cfg, scale)
        label_grid(axes, len(panels), "time (s)", _freq_label(cfg))
        fig.suptitle(title, fontsize=10)
        if image is not None and cax is not None:
            fig.colorbar(image, cax=cax, label=FEATURE_LABEL)
    return fig


def kernel_figure(kernel: np.ndarray, title: str) -> plt.Figure:
    """A conv kernel (time, frequency, in, out) as one small image per output channel.

    Each kernel is drawn on its own symmetric colour scale (red +, blue -): filters differ in
    norm, and a shared scale would show only the strongest few. These are weights, not
    spectrograms, so the run's spectrogram scale does not apply.
    """
    k = np.asarray(kernel)[:, :, 0, :]  # the first conv reads one input channel
    n = k.shape[-1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    with figure_style():
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
    rows: dict[str, list[Panel]], cfg: FeatureConfig, scale: Scale, title: str
) -> plt.Figure:
    """Inputs maximising channels: one row per layer, one column per channel."""
    cols = max(len(v) for v in rows.values())
    with figure_style():
        fig, axes, cax = panel_grid(len(rows), cols, 2.6, 1.7)
        image = None
        for r, panels in enumerate(rows.values()):
            for c in range(cols):
                if c >= len(panels):
                    axes[r, c].set_visible(False)
                    continue
                image = _draw(axes[r, c], panels[c], cfg, scale)
        label_grid(axes, axes.size, "time (s)", _freq_label(cfg))
        fig.suptitle(title, fontsize=10)
        if image is not None and cax is not None:
            fig.colorbar(image, cax=cax, label=FEATURE_LABEL)
    return fig
