"""Scoring a trained model on one split: accuracy and macro-F1 with bootstrap intervals,
per-family scores where a family has support, the confusion matrix and t-SNE pictures.

The core decides *when* a split may be read (the test split once per study); this module
only says what the numbers are.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from nsynth_research.core.task import SplitReport
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.figures import (
    confusion_figure,
    embedding_figure,
    project_embeddings,
)
from nsynth_research.instruments.training import SplitOutputs


def bootstrap_interval(
    correct: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a 0/1 vector (notes resampled)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), size=(resamples, len(correct)))
    means = correct[idx].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def per_class_scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision/recall/F1 only for families that have support in the split."""
    present = np.unique(labels).astype(int)
    p, r, f, s = precision_recall_fscore_support(
        labels, predictions, labels=present, zero_division=0
    )
    return {
        FAMILIES[c]: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(present)
    }


def split_report(
    outputs: SplitOutputs, split: str, *, resamples: int, seed: int, who: str, model_uri: str
) -> SplitReport:
    """Metrics, summary lines and figures of one scored split; `who` names the model."""
    labels, predictions = outputs.labels, outputs.predictions
    correct = (labels == predictions).astype(np.float64)
    low, high = bootstrap_interval(correct, resamples, seed)
    present = np.unique(labels)
    macro_f1 = float(
        f1_score(labels, predictions, labels=present, average="macro", zero_division=0)
    )
    per_class = per_class_scores(labels, predictions)
    accuracy = float(correct.mean())
    metrics = {
        f"{split}_accuracy": accuracy,
        f"{split}_accuracy_ci_low": low,
        f"{split}_accuracy_ci_high": high,
        f"{split}_macro_f1": macro_f1,
        f"n_{split}": len(labels),
    }
    for family, scores in per_class.items():
        metrics.update({f"{split}_{k}.{family}": v for k, v in scores.items() if k != "support"})
    title = split.capitalize()
    artifacts: dict[str, object] = {
        "per_class.json": per_class,
        f"figures/confusion_{split}.png": confusion_figure(
            labels, predictions, f"{title} confusion matrix ({who})"
        ),
    }
    for dims in (2, 3):
        points = project_embeddings(outputs.embeddings, dims, seed)
        artifacts[f"figures/tsne_{split}_{dims}d.png"] = embedding_figure(
            points, labels, f"{title} embeddings (PCA 50 -> t-SNE {dims}-D), {who}"
        )
    line = (
        f"{split} accuracy {accuracy:.4f}  95% bootstrap interval [{low:.4f}, {high:.4f}], "
        f"macro-F1 {macro_f1:.4f}, {len(labels)} notes"
    )
    return SplitReport(metrics=metrics, lines=[line], model_uri=model_uri, artifacts=artifacts)
