"""Fitting one configured model: Keras `compile` + `fit` on the streaming pipeline.

Training knows nothing of MLflow or Optuna: callers hand in callbacks (epoch logging,
pruning), which keeps data flowing one way and lets the study drive training. Only the
train and validation splits are read here; the test split belongs to `evaluation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from nsynth_research.core.describe import combine_digests
from nsynth_research.core.errors import UserError
from nsynth_research.core.keras_loop import (
    distribution_scope,
    fit_classifier,
    seed_everything,
)
from nsynth_research.core.task import FitResult
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.fingerprint import (
    data_fingerprint,
    notes_fingerprint,
    split_fingerprint,
)
from nsynth_research.instruments.data.folds import library_fold
from nsynth_research.instruments.data.notes import Note
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.features.cache import (
    FeatureCache,
    cache_dir,
    choose_cache,
    ensure_cached,
)
from nsynth_research.instruments.features.stats import FeatureStats, load_or_compute_stats
from nsynth_research.instruments.memory import check_memory
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
    #: Split -> notes of held-out libraries that no training preset shares samples with
    #: (`data.train_libraries`, see `data.folds`); empty without a fold.
    transfer: Mapping[str, tuple[Note, ...]] = field(default_factory=dict)
    #: Dataset name (train, valid, transfer) -> digest of the notes it holds
    #: (`notes_fingerprint`): the same for every front-end a study tries.
    digests: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identity of the notes a result rests on, over the datasets' digests; the features
        and statistics made from them are recorded beside it (`stats.fingerprint`)."""
        return combine_digests(self.digests.values())


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


def read_notes(config: InstrumentConfig, split: str) -> list[Note]:
    """A split's notes as a run of `config` reads them: the train split capped per instrument
    (`data.max_notes_per_instrument`), every split by `data.max_notes_per_split`. Whatever
    rebuilds a run's train statistics must read its train notes through this."""
    cap = config.data.max_notes_per_instrument if split == "train" else None
    return read_split(
        config.data.root, split, limit=config.data.max_notes_per_split, per_instrument_limit=cap
    )


def prepare_data(config: InstrumentConfig, *, progress: bool = True) -> PreparedData:
    """Read train/valid manifests, apply the library fold, fill the feature cache (when on)
    and load (or compute once) the train statistics: what trials share, done before them."""
    check_memory(config)
    root = Path(config.data.root)
    notes = {split: read_notes(config, split) for split in ("train", "valid")}
    fold = library_fold(notes["train"], notes["valid"], config.data.train_libraries)
    splits = {split: split_fingerprint(root, split) for split in ("train", "valid")}
    parts = {"train": {"train": fold.train}, "valid": {"valid": fold.valid}}
    if fold.transfer_notes:
        parts["transfer"] = fold.transfer
    return _featurised(
        config,
        root,
        fold.train,
        fold.valid,
        fold.transfer,
        data_fingerprint(root, ("train", "valid")),
        {name: notes_fingerprint(root, part, splits) for name, part in parts.items()},
        progress=progress,
    )


def for_trial(
    data: PreparedData, config: InstrumentConfig, *, progress: bool = False
) -> PreparedData:
    """The study's data with the features and train statistics `config.features` asks for.

    Features are searchable per trial: a trial whose front-end differs from the study's base
    fills (or finds) the feature cache and statistics keyed by its own feature settings
    (`FeatureConfig.content_key`), so each front-end is computed once per corpus."""
    check_memory(config)
    made = data.stats.config
    if made is not None and made.content_key() == config.features.content_key():
        return data
    return _featurised(
        config,
        data.root,
        data.train,
        data.valid,
        dict(data.transfer),
        data.corpus_fingerprint,
        data.digests,
        progress=progress,
    )


def _featurised(
    config: InstrumentConfig,
    root: Path,
    train: Sequence[Note],
    valid: Sequence[Note],
    transfer: Mapping[str, tuple[Note, ...]],
    corpus_fingerprint: str,
    digests: Mapping[str, str],
    *,
    progress: bool,
) -> PreparedData:
    notes = {
        "train": [*train, *transfer.get("train", ())],
        "valid": [*valid, *transfer.get("valid", ())],
    }
    caches: dict[str, FeatureCache] = {}
    dtype: str | None = config.data.cache_dtype if config.data.feature_cache else None
    if config.data.feature_cache == "auto":
        dtype = choose_cache(root, sum(map(len, notes.values())), config.features)
    if dtype is not None:
        for split, split_notes in notes.items():
            directory = cache_dir(root, split, config.features, dtype)
            caches[split] = ensure_cached(
                split_notes,
                config.features,
                directory,
                progress=progress,
                label=f"{split} features",
                dtype=dtype,
            )
    stats = load_or_compute_stats(
        root, train, config.features, progress=progress, cache=caches.get("train")
    )
    return PreparedData(
        root=root,
        train=tuple(train),
        valid=tuple(valid),
        stats=stats,
        corpus_fingerprint=corpus_fingerprint,
        caches=caches,
        transfer=dict(transfer),
        digests=dict(digests),
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
        augment=config.augment if split == "train" else None,
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


def transfer_outputs(
    model: keras.Model, data: PreparedData, config: InstrumentConfig
) -> SplitOutputs | None:
    """The model on the fold's transfer notes (held-out libraries, unheard samples)."""
    parts = [
        predict_split(model, notes, data.stats, config, data.caches.get(split))
        for split, notes in data.transfer.items()
        if notes
    ]
    if not parts:
        return None
    columns = zip(*(astuple(p) for p in parts), strict=True)
    return SplitOutputs(*(np.concatenate(column) for column in columns))


class TransferAccuracy(keras.callbacks.Callback):
    """Adds `val_transfer_accuracy` (accuracy on the fold's transfer notes) to each epoch's
    logs; `fit_classifier` runs it before early stopping, logging and pruning read them."""

    def __init__(self, data: PreparedData, config: InstrumentConfig) -> None:
        super().__init__()
        self.data, self.config = data, config

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        outputs = transfer_outputs(self.model, self.data, self.config)
        if logs is not None and outputs is not None:
            logs[TRANSFER_METRIC] = outputs.accuracy


#: Per-epoch accuracy on presets of libraries the model did not train on.
TRANSFER_METRIC = "val_transfer_accuracy"


def train(
    config: InstrumentConfig,
    data: PreparedData,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    monitor: str = "val_accuracy",
) -> FitResult:
    """Fit, keep the weights of the epoch best by `monitor` (in-library `val_accuracy` or
    `val_transfer_accuracy`), and score the validation and transfer notes with them."""
    data = for_trial(data, config)
    has_transfer = any(data.transfer.values())
    if monitor == TRANSFER_METRIC and not has_transfer:
        raise UserError(
            f"the objective {TRANSFER_METRIC} needs a library fold: set data.train_libraries "
            "to the libraries to train on (the others are scored)"
        )
    seed_everything(config.seed, config.training.deterministic)
    tcfg = config.training
    steps = max(1, math.ceil(len(data.train) / tcfg.batch_size))
    with distribution_scope(tcfg):  # variables are made at build and compile (fit_classifier)
        model = build_model(config.model, config.features, tcfg.precision)
        fit = fit_classifier(
            model,
            dataset_for("train", data, config, shuffle=True),
            dataset_for("valid", data, config, shuffle=False),
            optimizer=config.optimizer,
            training=tcfg,
            steps_per_epoch=steps,
            monitor=monitor,
            mode="max",
            callbacks=callbacks,
            metric_callbacks=[TransferAccuracy(data, config)] if has_transfer else [],
            verbose=verbose,
        )
    valid = predict_split(model, data.valid, data.stats, config, data.caches.get("valid"))
    transfer = transfer_outputs(model, data, config)
    # The best epoch's val_accuracy and val_transfer_accuracy are logged by the core from the
    # history (`runs.scored_metrics`), beside these summaries of the fit.
    return FitResult(
        model=model,
        history=fit.history,
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        seconds=fit.seconds,
        objective=transfer.accuracy if monitor == TRANSFER_METRIC and transfer else valid.accuracy,
        metrics={
            "epochs_run": fit.epochs_run,
            "wall_seconds": fit.seconds,
            "train_seconds": fit.train_seconds,
            "examples_per_second": len(data.train) * fit.passes / max(fit.train_seconds, 1e-9),
        },
        outputs=valid,
    )
