"""Figures a researcher looks at instead of reading numbers: confusion matrices and the
PCA -> t-SNE pictures of the learned embedding, coloured by family.

Every function returns a matplotlib Figure and draws only what the data holds (families
absent from a split get no row), so no figure ever implies support that is not there. Each is
drawn in matplotlib's default style whatever ran before (Optuna's plots set ggplot globally).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import confusion_matrix

from nsynth_research.core.plotstyle import figure_style
from nsynth_research.instruments.families import FAMILIES

# get_cmap's stub returns the Colormap base; tab20 is a ListedColormap of RGB tuples.
_TAB20: tuple[tuple[float, float, float], ...]
_TAB20 = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
#: One fixed colour per family across every figure of the project.
FAMILY_COLOURS = dict(zip(FAMILIES, [*_TAB20[::2], (0.3, 0.3, 0.3)], strict=True))


@figure_style()
def confusion_figure(labels: np.ndarray, predictions: np.ndarray, title: str) -> Figure:
    """Row-normalised confusion matrix over families that occur as truth or prediction."""
    present = np.union1d(np.unique(labels), np.unique(predictions)).astype(int)
    counts = confusion_matrix(labels, predictions, labels=present)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    names = [FAMILIES[i] for i in present]
    size = 1.0 + 0.55 * len(present)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), n in np.ndenumerate(counts):
        if n:
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted family")
    ax.set_ylabel("true family")
    accuracy = float((labels == predictions).mean()) if len(labels) else float("nan")
    ax.set_title(
        f"{title}\naccuracy {accuracy:.3f} on {len(labels)} notes (counts; colour = row share)"
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def project_embeddings(embeddings: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """PCA to at most 50 dimensions, then t-SNE to `dims`: the seed pipeline's projection.

    PCA first removes noise dimensions and makes t-SNE fast; both are clipped to what a
    small split allows (t-SNE needs perplexity below the number of points).
    """
    n = len(embeddings)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    reduced = PCA(n_components=min(50, n, embeddings.shape[1]), random_state=seed).fit_transform(
        embeddings.astype(np.float64)
    )
    perplexity = float(min(30.0, (n - 1) / 3))
    tsne = TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(reduced)


@figure_style()
def embedding_figure(points: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """Scatter of a 2-D or 3-D projection, one colour and legend entry per family present."""
    dims = points.shape[1]
    fig = plt.figure(figsize=(8, 6.5))
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    for index in np.unique(labels).astype(int):
        name = FAMILIES[index]
        mask = labels == index
        coords = [points[mask, d] for d in range(dims)]
        # add_subplot's stub returns Axes; projection="3d" gives Axes3D, whose third is zs.
        ax.scatter(  # type: ignore[misc]
            *coords, s=10, alpha=0.8, color=FAMILY_COLOURS[name], label=f"{name} ({mask.sum()})"
        )
    ax.set_title(title)
    ax.legend(
        loc="center left",
        bbox_to_anchor=(1.0 if dims == 2 else 1.05, 0.5),
        fontsize=8,
        markerscale=1.5,
    )
    if dims == 3:
        ax.view_init(elev=20, azim=35)  # type: ignore[attr-defined]  # Axes3D (see above)
    fig.tight_layout()
    return fig
