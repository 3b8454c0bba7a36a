"""Fitting one configured Char-RNN, and the per-tune scores every evaluation builds on.

Training knows nothing of MLflow or Optuna: the core hands in its callbacks (epoch logging,
pruning). The loss is softmax cross-entropy over the vocabulary (the classic used a sigmoid
loss over one-hot targets, which scores each event as an independent yes/no and is not a
distribution over the next event). Keras reports it in nats per event; perplexity and bits
per event are derived from it once per epoch, before the core's callbacks read the logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from nsynth_research.core.keras_loop import fit_classifier, seed_everything
from nsynth_research.core.task import FitResult
from nsynth_research.melody.config import MelodyConfig
from nsynth_research.melody.corpus import Tune
from nsynth_research.melody.data import MelodyData, data_settings, encode_split, make_dataset
from nsynth_research.melody.model import build_model
from nsynth_research.melody.tokens import Vocabulary

LN2 = math.log(2.0)


class LanguageMetrics(keras.callbacks.Callback):
    """Adds perplexity, bits per event and the cross-entropy in nats to each epoch's logs.

    It must run before the core's callbacks (it is first in the list): Keras hands every
    callback the same logs dict, so they see the derived values too.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        for prefix in ("", "val_"):
            nats = logs.get(f"{prefix}loss")
            if nats is not None:
                logs[f"{prefix}cross_entropy_nats"] = float(nats)
                logs[f"{prefix}bits_per_event"] = float(nats) / LN2
                logs[f"{prefix}perplexity"] = math.exp(float(nats))


def train(
    config: MelodyConfig,
    data: MelodyData,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> FitResult:
    """Fit, keep the lowest-validation-loss weights (= lowest perplexity)."""
    if data.settings != data_settings(config):
        raise ValueError("the prepared data was made from other corpus/tokens/split settings")
    seed_everything(config.seed, config.training.deterministic)
    tcfg = config.training
    length = config.model.sequence_length
    train_split, valid_split = data.encoded("train", length), data.encoded("valid", length)
    steps = max(1, math.ceil(train_split.n_events / tcfg.batch_size))
    model = build_model(config.model, len(data.vocab))
    fit = fit_classifier(
        model,
        make_dataset(
            train_split, tcfg.batch_size, shuffle=True, seed=config.seed, buffer=tcfg.shuffle_buffer
        ),
        make_dataset(
            valid_split, 1024, shuffle=False, seed=config.seed, buffer=tcfg.shuffle_buffer
        ),
        optimizer=config.optimizer,
        training=tcfg,
        steps_per_epoch=steps,
        monitor="val_loss",
        mode="min",
        callbacks=[LanguageMetrics(), *callbacks],
        verbose=verbose,
    )
    history, best_epoch, epochs_run = fit.history, fit.best_epoch, fit.epochs_run
    best_nats = history["val_loss"][best_epoch]
    return FitResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=fit.seconds,
        objective=math.exp(best_nats),
        metrics={
            "best_val_perplexity": math.exp(best_nats),
            "best_val_loss": best_nats,
            "best_val_bits_per_event": best_nats / LN2,
            "best_val_accuracy": history["val_accuracy"][best_epoch],
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "wall_seconds": fit.seconds,
            "train_seconds": fit.train_seconds,
            "events_per_second": train_split.n_events * fit.passes / max(fit.train_seconds, 1e-9),
        },
    )


@dataclass(frozen=True)
class TuneScores:
    """Per event of each tune: NLL in nats and whether the top guess was right."""

    nll: list[np.ndarray]
    correct: list[np.ndarray]
    unknown: int


def score_tunes(
    model: keras.Model, tunes: Sequence[Tune], vocab: Vocabulary, length: int
) -> TuneScores:
    """One forward pass over every window of `tunes`, grouped back by tune."""
    split = encode_split(tunes, vocab, length)
    logits = model.predict(split.x, batch_size=1024, verbose=0).astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    nll = log_z - logits[np.arange(len(split.y)), split.y]
    correct = (logits.argmax(axis=1) == split.y).astype(np.float64)
    bounds = np.flatnonzero(np.diff(split.tune)) + 1
    return TuneScores(np.split(nll, bounds), np.split(correct, bounds), split.unknown)
