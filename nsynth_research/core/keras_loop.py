"""Keras pieces every task's training loop shares: seeding, the optimizer from config, and
the fit itself (loss, early stopping, timing), so tasks differ only in data and network."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from nsynth_research.core.config import OptimizerConfig, TrainingConfig


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow; op determinism makes CPU runs bit-repeatable."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off. On two cores, many epochs read through an
    autotuned pipeline ran the training step on one core (half the speed, the same CPU
    seconds), in-memory tensors included; with autotuning off, almost none did
    (docs/performance.md, "Slow epochs: tf.data autotuning" counts them). Maps asked to run AUTOTUNE
    calls in parallel then keep tf.data's default width instead of a tuned one."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def distribution_scope(training: TrainingConfig) -> contextlib.AbstractContextManager:
    """Where a model and its optimizer must be built and compiled: MirroredStrategy's scope
    (`training.distribute: mirrored`) replicates their variables on every local GPU, or on
    every logical CPU device where there is no GPU; `fit` then splits each batch across them."""
    if training.distribute == "none":
        return contextlib.nullcontext()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices]).scope()


def build_optimizer(
    cfg: OptimizerConfig, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    lr: float | keras.optimizers.schedules.LearningRateSchedule = cfg.learning_rate
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps_per_epoch * epochs)
    elif cfg.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            cfg.learning_rate, steps_per_epoch, cfg.decay_rate
        )
    if cfg.name == "adadelta":
        return keras.optimizers.Adadelta(lr)
    if cfg.name == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum)
    return keras.optimizers.RMSprop(lr, momentum=cfg.momentum)


def _dense_targets(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Class indices (one rank below the logits) as one-hot rows; soft targets (mixup) as is."""
    if len(y_true.shape) == len(logits.shape) - 1:
        return tf.one_hot(tf.cast(y_true, tf.int32), tf.shape(logits)[-1], dtype=logits.dtype)
    return tf.cast(y_true, logits.dtype)


@keras.saving.register_keras_serializable(package="nsynth_research")
class SoftmaxCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy on logits for class indices or soft targets (mixup), with label
    smoothing: one loss whatever the batch carries, so validation (indices) and augmented
    training (mixed one-hot rows) are scored alike."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "softmax_cross_entropy", **kw):
        super().__init__(name=name, **kw)
        self.label_smoothing = label_smoothing

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return keras.losses.categorical_crossentropy(
            _dense_targets(y_true, y_pred),
            y_pred,
            from_logits=True,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="nsynth_research")
def target_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Accuracy against the largest target (the label itself for class indices)."""
    target = tf.argmax(_dense_targets(y_true, y_pred), axis=-1)
    return tf.cast(tf.equal(target, tf.argmax(y_pred, axis=-1)), tf.float32)


def loss_scaled(model: keras.Model, opt: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Wrap `opt` in dynamic loss scaling when any layer computes in float16.

    Precision is set per layer, so the model's own policy stays float32 and Keras' `compile`
    does not add loss scaling by itself; without it small float16 gradients round to zero."""
    if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
        return keras.optimizers.LossScaleOptimizer(opt)
    return opt


class _TrainTimer(keras.callbacks.Callback):
    """Times the training phase of each epoch apart from validation, for honest rates."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self._start: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None


class _SpanningStopper(keras.callbacks.EarlyStopping):
    """Early stopping whose best value and best weights span the subset and the main `fit`
    calls, so the restored weights are those of the best epoch of either (Keras resets them
    at every `fit` call). Patience counts full epochs only: a subset epoch scores a model
    that has seen a fraction of the data, so a lucky first look must not use up the epochs
    a slow starter needs to overtake it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.started = False
        self.final_phase = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.started:
            super().on_train_begin(logs)
            self.started = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if not self.final_phase:  # never stop on a subset epoch, nor count it as waiting
            self.wait, self.stopped_epoch = 0, 0
            self.model.stop_training = False

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.final_phase or self.stopped_epoch > 0:
            super().on_train_end(logs)


def subset_steps(training: TrainingConfig, steps_per_epoch: int) -> int:
    """Batches in each subset epoch: `subset_fraction` of an epoch, at least one."""
    return max(1, math.ceil(training.subset_fraction * steps_per_epoch))


def epoch_equivalents(training: TrainingConfig, epochs_run: int, steps_per_epoch: int) -> float:
    """Full passes over the training data that `epochs_run` epochs cost (a subset epoch
    takes `subset_steps` of the `steps_per_epoch` batches, `subset_fraction` rounded up to
    whole batches): the honest denominator of examples-per-second rates."""
    warm = min(epochs_run, training.subset_epochs)
    fraction = subset_steps(training, steps_per_epoch) / steps_per_epoch
    return warm * fraction + (epochs_run - warm)


@dataclass(frozen=True)
class KerasFit:
    """What one `fit_classifier` call measured."""

    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    seconds: float
    #: Training time without validation passes.
    train_seconds: float
    #: Full passes over the training data those epochs cost (see `epoch_equivalents`).
    passes: float


def fit_classifier(
    model: keras.Model,
    train: tf.data.Dataset,
    valid: tf.data.Dataset,
    *,
    optimizer: OptimizerConfig,
    training: TrainingConfig,
    steps_per_epoch: int,
    monitor: str,
    mode: Literal["max", "min"],
    callbacks: Sequence[keras.callbacks.Callback] = (),
    metric_callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> KerasFit:
    """The training loop every task shares: softmax cross-entropy on logits (with
    `training.label_smoothing`), early stopping on a validation metric with the best epoch's
    weights restored, the caller's callbacks (epoch logging, pruning) after the task's own,
    and the pipeline's seeded shuffling.

    `metric_callbacks` add metrics to each epoch's logs (e.g. accuracy on a second set);
    they run first, so early stopping, logging and pruning can all read what they add.

    A multi-fidelity start (`training.subset_epochs` > 0) runs the first epochs on a fresh
    random `subset_fraction` of the training batches each (the pipeline reshuffles every
    pass), so a pruner can drop a poor trial after a fraction of the data; it is a second
    `fit` call, with early stopping carried across and epochs numbered on."""
    model.compile(
        optimizer=loss_scaled(model, build_optimizer(optimizer, steps_per_epoch, training.epochs)),
        loss=SoftmaxCrossEntropy(training.label_smoothing),
        metrics=[keras.metrics.MeanMetricWrapper(target_accuracy, name="accuracy")],
    )
    timer = _TrainTimer()
    stopper = _SpanningStopper(
        monitor=monitor,
        mode=mode,
        patience=training.early_stopping_patience or training.epochs,
        restore_best_weights=True,
    )
    every = [timer, *metric_callbacks, stopper, *callbacks]
    warm = min(training.subset_epochs, training.epochs)
    subset = (train.take(subset_steps(training, steps_per_epoch)), 0, warm)
    phases = [p for p in (subset, (train, warm, training.epochs)) if p[1] < p[2]]
    start = time.perf_counter()
    history: dict[str, list[float]] = {}
    for i, (data, first, last) in enumerate(phases):
        stopper.final_phase = i == len(phases) - 1
        fit = model.fit(
            data,
            validation_data=valid,
            initial_epoch=first,
            epochs=last,
            callbacks=every,
            shuffle=False,  # the pipeline shuffles, by seed
            verbose=verbose,
        )
        for key, vals in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in vals)
        if stopper.stopped_epoch > 0:
            break
    seconds = time.perf_counter() - start
    pick = np.argmax if mode == "max" else np.argmin
    epochs_run = len(history.get("loss", []))
    return KerasFit(
        history=history,
        best_epoch=int(pick(history[monitor])),
        epochs_run=epochs_run,
        seconds=seconds,
        train_seconds=timer.seconds,
        passes=epoch_equivalents(training, epochs_run, steps_per_epoch),
    )
