"""Fitting one configured model: Keras `compile` + `fit` on the streaming pipeline.

Training knows nothing of MLflow or Optuna: callers hand in callbacks (epoch logging,
pruning), which keeps data flowing one way and lets the study drive training. Only the
train and validation splits are read here; the test split belongs to `evaluation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from nsynth_research.core.keras_loop import fit_classifier, seed_everything
from nsynth_research.core.task import FitResult
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.fingerprint import data_fingerprint
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import FeatureCache, cache_dir, ensure_cached
from nsynth_research.instruments.features.stats import FeatureStats, load_or_compute_stats
from nsynth_research.instruments.model import build_model, embedding_model
from nsynth_research.instruments.pipeline import make_dataset


@dataclass(frozen=True)
class PreparedData:
    """Train and validation manifests plus train statistics, loaded once and shared by trials."""

    root: Path
    train: tuple[Note, ...]
    valid: tuple[Note, ...]
    stats: FeatureStats
    corpus_fingerprint: str
    #: Stored features of the train and valid notes, when `data.feature_cache` is on.
    caches: Mapping[str, FeatureCache] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identity of everything a result depends on in the data: notes and statistics."""
        return f"{self.corpus_fingerprint}-{self.stats.fingerprint}"


@dataclass(frozen=True)
class SplitOutputs:
    """What the trained network says about every note of a split, in manifest order."""

    labels: np.ndarray
    logits: np.ndarray
    embeddings: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())


def prepare_data(config: InstrumentConfig, *, progress: bool = True) -> PreparedData:
    """Read train/valid manifests, fill the feature cache (when on) and load (or compute
    once) the train statistics: everything trials share, done once before any of them."""
    root = Path(config.data.root)
    limit = config.data.max_notes_per_split
    notes = {split: read_split(root, split, limit=limit) for split in ("train", "valid")}
    caches: dict[str, FeatureCache] = {}
    if config.data.feature_cache:
        for split, split_notes in notes.items():
            directory = cache_dir(root, split, config.features)
            caches[split] = ensure_cached(
                split_notes,
                config.features,
                directory,
                progress=progress,
                label=f"{split} features",
            )
    stats = load_or_compute_stats(
        root, notes["train"], config.features, progress=progress, cache=caches.get("train")
    )
    return PreparedData(
        root=root,
        train=tuple(notes["train"]),
        valid=tuple(notes["valid"]),
        stats=stats,
        corpus_fingerprint=data_fingerprint(root, ("train", "valid")),
        caches=caches,
    )


def dataset_for(
    split: Literal["train", "valid"],
    data: PreparedData,
    config: InstrumentConfig,
    *,
    shuffle: bool,
) -> tf.data.Dataset:
    return make_dataset(
        data.train if split == "train" else data.valid,
        data.stats,
        config.features,
        batch_size=config.training.batch_size,
        shuffle=shuffle,
        seed=config.seed,
        shuffle_buffer=config.training.shuffle_buffer,
        cache=data.caches.get(split),
    )


def predict_split(
    model: keras.Model,
    notes: Sequence[Note],
    stats: FeatureStats,
    config: InstrumentConfig,
    cache: FeatureCache | None = None,
) -> SplitOutputs:
    """Logits and embeddings of every note, one forward pass each, in manifest order."""
    ds = make_dataset(
        notes,
        stats,
        config.features,
        batch_size=config.training.batch_size,
        shuffle=False,
        seed=config.seed,
        cache=cache,
    )
    both = embedding_model(model)
    logits, embeddings, labels = [], [], []
    for x, y in ds:
        lg, emb = both(x, training=False)
        logits.append(np.asarray(lg, dtype=np.float32))
        embeddings.append(np.asarray(emb, dtype=np.float32))
        labels.append(y.numpy())
    return SplitOutputs(
        labels=np.concatenate(labels),
        logits=np.concatenate(logits),
        embeddings=np.concatenate(embeddings),
    )


def train(
    config: InstrumentConfig,
    data: PreparedData,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> FitResult:
    """Fit, keep the best-validation-accuracy weights, and score the validation split."""
    seed_everything(config.seed, config.training.deterministic)
    tcfg = config.training
    steps = max(1, math.ceil(len(data.train) / tcfg.batch_size))
    model = build_model(config.model, config.features, tcfg.precision)
    fit = fit_classifier(
        model,
        dataset_for("train", data, config, shuffle=True),
        dataset_for("valid", data, config, shuffle=False),
        optimizer=config.optimizer,
        training=tcfg,
        steps_per_epoch=steps,
        monitor="val_accuracy",
        mode="max",
        callbacks=callbacks,
        verbose=verbose,
    )
    valid = predict_split(model, data.valid, data.stats, config, data.caches.get("valid"))
    return FitResult(
        model=model,
        history=fit.history,
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        seconds=fit.seconds,
        objective=valid.accuracy,
        metrics={
            "best_val_accuracy": valid.accuracy,
            "best_epoch": fit.best_epoch,
            "epochs_run": fit.epochs_run,
            "wall_seconds": fit.seconds,
            "train_seconds": fit.train_seconds,
            "examples_per_second": len(data.train) * fit.epochs_run / max(fit.train_seconds, 1e-9),
        },
        outputs=valid,
    )
