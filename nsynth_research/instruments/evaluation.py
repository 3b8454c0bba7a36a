"""Scoring a trained model on one split: accuracy and macro-F1 with bootstrap intervals,
per-family scores where a family has support, the confusion matrix and t-SNE pictures.

Notes of one instrument are not independent (same samples, same timbre at every pitch): a
test split of 13 instruments holds 13 independent draws, not 440. The headline interval
therefore resamples instruments, all the notes of a drawn instrument together; the older
note-level interval is reported beside it, on the same predictions, to show how much it
understated the uncertainty. The core decides *when* a split may be read (the test split once
per study); this module only says what the numbers are.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_recall_fscore_support

from nsynth_research.core.task import SplitReport
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.figures import (
    confusion_figure,
    embedding_figure,
    project_embeddings,
)
from nsynth_research.instruments.training import SplitOutputs

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of accuracy and macro-F1 over resampled clusters."""

    accuracy: tuple[float, float]
    macro_f1: tuple[float, float]
    #: How many independent units were resampled (instruments, or notes).
    units: int


def cluster_bootstrap(
    labels: np.ndarray,
    predictions: np.ndarray,
    clusters: Sequence[str] | np.ndarray,
    *,
    resamples: int,
    seed: int,
    level: float = LEVEL,
) -> Interval:
    """Resample whole clusters (an instrument's notes) with replacement, `resamples` times.

    Each cluster's confusion matrix is computed once; a resample is a weighted sum of them,
    so 2,000 resamples of a 3,000-note split take well under a second. Macro-F1 of a
    resample averages the families it holds (as `macro_f1` does for the whole split).
    """
    _, cluster = np.unique(np.asarray(clusters), return_inverse=True)
    n = int(cluster.max()) + 1 if len(cluster) else 0
    k = len(FAMILIES)
    per_cluster = np.zeros((n, k * k))
    np.add.at(per_cluster, (cluster, labels * k + predictions), 1.0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (np.arange(resamples)[:, None] * n + draws).ravel()
    counts = np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(float)
    confusion = (counts @ per_cluster).reshape(resamples, k, k)
    tp = np.einsum("rii->ri", confusion)
    support, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    accuracy = tp.sum(axis=1) / support.sum(axis=1)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    macro = (f1 * present).sum(axis=1) / present.sum(axis=1)
    tail = (1 - level) / 2

    def bounds(values: np.ndarray) -> tuple[float, float]:
        return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))

    return Interval(bounds(accuracy), bounds(macro), n)


def macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Macro-F1 over the families present in the split (absent ones have no F1 to average)."""
    present = np.unique(labels)
    return float(f1_score(labels, predictions, labels=present, average="macro", zero_division=0))


def per_class_scores(
    labels: np.ndarray, predictions: np.ndarray, instruments: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision/recall/F1 only for families that have support in the split, with the
    number of notes and of instruments each rests on."""
    present = np.unique(labels).astype(int)
    p, r, f, s = precision_recall_fscore_support(
        labels, predictions, labels=present, zero_division=0
    )
    names = np.asarray(instruments)
    return {
        FAMILIES[c]: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
            "instruments": len(set(names[labels == c])),
        }
        for i, c in enumerate(present)
    }


def family_table(per_class: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row a family with support, scores rounded for reading in the MLflow UI."""
    rows = [{"family": family, **scores} for family, scores in per_class.items()]
    return pd.DataFrame(rows).round(4)


def split_report(
    outputs: SplitOutputs,
    instruments: Sequence[str],
    split: str,
    *,
    resamples: int,
    seed: int,
    who: str,
    model_uri: str,
    label: str,
) -> SplitReport:
    """Metrics, summary lines and figures of one scored split; `who` names the model,
    `instruments` gives each note's instrument, in the outputs' order, and `label` says what
    the notes are (e.g. "across libraries (TimGM6mb test presets ...)") on every line and
    figure. `split` names the metrics (`test`, `test_transfer`)."""
    labels, predictions = outputs.labels, outputs.predictions
    if len(instruments) != len(labels):
        raise ValueError(f"{len(instruments)} instrument names for {len(labels)} notes")
    by_instrument = cluster_bootstrap(
        labels, predictions, instruments, resamples=resamples, seed=seed
    )
    by_note = cluster_bootstrap(
        labels, predictions, np.arange(len(labels)), resamples=resamples, seed=seed
    )
    accuracy = float((labels == predictions).mean())
    f1 = macro_f1(labels, predictions)
    per_class = per_class_scores(labels, predictions, instruments)
    metrics = {
        f"{split}_accuracy": accuracy,
        f"{split}_accuracy_ci_low": by_instrument.accuracy[0],
        f"{split}_accuracy_ci_high": by_instrument.accuracy[1],
        f"{split}_accuracy_note_ci_low": by_note.accuracy[0],
        f"{split}_accuracy_note_ci_high": by_note.accuracy[1],
        f"{split}_macro_f1": f1,
        f"{split}_macro_f1_ci_low": by_instrument.macro_f1[0],
        f"{split}_macro_f1_ci_high": by_instrument.macro_f1[1],
        f"{split}_macro_f1_note_ci_low": by_note.macro_f1[0],
        f"{split}_macro_f1_note_ci_high": by_note.macro_f1[1],
        f"n_{split}": len(labels),
        f"n_{split}_instruments": by_instrument.units,
    }
    # Per-family scores are a table, not 33 one-point charts: a few summary metrics stay
    # comparable across runs, the rest is per_family table (and per_class_<split>.json for docs).
    recalls = {family: scores["recall"] for family, scores in per_class.items()}
    if recalls:
        worst = min(recalls, key=recalls.__getitem__)
        metrics[f"{split}_min_family_recall"] = recalls[worst]
        metrics[f"{split}_families"] = len(recalls)
    title = f"{split.split('_')[0].capitalize()} notes {label}"
    artifacts: dict[str, object] = {
        f"per_class_{split}.json": per_class,
        f"per_family_{split}.table.json": family_table(per_class),
        f"figures/confusion_{split}.png": confusion_figure(
            labels, predictions, _wrapped(f"{title}: confusion matrix, {who}")
        ),
    }
    for dims in (2, 3):
        points = project_embeddings(outputs.embeddings, dims, seed)
        artifacts[f"figures/tsne_{split}_{dims}d.png"] = embedding_figure(
            points, labels, _wrapped(f"{title}: embeddings (PCA 50 -> t-SNE {dims}-D), {who}")
        )
    return SplitReport(
        metrics=metrics,
        lines=report_lines(split, accuracy, f1, by_instrument, by_note, per_class, label),
        model_uri=model_uri,
        artifacts=artifacts,
    )


def _wrapped(title: str) -> str:
    """A figure title on lines short enough for the figure's width."""
    return "\n".join(textwrap.wrap(title, 70))


def report_lines(
    split: str,
    accuracy: float,
    f1: float,
    by_instrument: Interval,
    by_note: Interval,
    per_class: dict[str, dict[str, float]],
    label: str,
) -> list[str]:
    """Accuracy (instrument interval, note interval beside it), macro-F1, then a titled table
    of one row a family; every line says which notes it was computed on (`label`)."""

    def span(bounds: tuple[float, float]) -> str:
        return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"

    kind = split.split("_")[0]
    lines = [
        f"{kind} accuracy {label}: {accuracy:.4f}, 95% bootstrap interval over instruments "
        f"{span(by_instrument.accuracy)} (over notes {span(by_note.accuracy)}), "
        f"{by_note.units} notes of {by_instrument.units} instruments",
        f"{kind} macro-F1 {label}: {f1:.4f}, over instruments {span(by_instrument.macro_f1)} "
        f"(over notes {span(by_note.macro_f1)})",
        f"per family, {kind} notes {label}:",
        f"{'family':<11} {'recall':>7} {'F1':>7} {'notes':>6} {'instruments':>11}",
    ]
    for family, s in per_class.items():
        lines.append(
            f"{family:<11} {s['recall']:>7.4f} {s['f1']:>7.4f} {s['support']:>6d} "
            f"{s['instruments']:>11d}"
        )
    return lines
