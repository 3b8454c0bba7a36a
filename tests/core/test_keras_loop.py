"""The shared fit loop's multi-fidelity start: fewer batches in the first epochs, early
stopping and epoch numbering carried across the two `fit` calls."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from nsynth_research.core.config import OptimizerConfig, TrainingConfig
from nsynth_research.core.keras_loop import (
    KerasFit,
    epoch_equivalents,
    fit_classifier,
    loss_scaled,
)

BATCHES, BATCH = 8, 4


def toy_data() -> tuple[tf.data.Dataset, tf.data.Dataset]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCHES * BATCH, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(BATCH)
    return train, tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


class Counter(keras.callbacks.Callback):
    """Training batches seen in each epoch, by epoch number."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: dict[int, int] = {}

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.batches[epoch] = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batches[self.epoch] += 1


def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])


def fit(
    training: TrainingConfig,
    callbacks: list = (),
    metric_callbacks: list = (),
    net: keras.Model | None = None,
) -> KerasFit:
    train, valid = toy_data()
    return fit_classifier(
        net or model(),
        train,
        valid,
        optimizer=OptimizerConfig(name="adam", learning_rate=0.01),
        training=training,
        steps_per_epoch=BATCHES,
        monitor="val_accuracy",
        mode="max",
        callbacks=callbacks,
        metric_callbacks=metric_callbacks,
        verbose=0,
    )


def test_subset_epochs_see_a_fraction_of_the_batches_then_all() -> None:
    counter = Counter()
    training = TrainingConfig(
        epochs=5, subset_epochs=2, subset_fraction=0.25, early_stopping_patience=None
    )
    result = fit(training, [counter])
    assert counter.batches == {0: 2, 1: 2, 2: 8, 3: 8, 4: 8}
    assert result.epochs_run == 5 and len(result.history["val_accuracy"]) == 5
    assert result.passes == pytest.approx(2 * 0.25 + 3)


def test_without_a_subset_every_epoch_sees_everything() -> None:
    counter = Counter()
    result = fit(TrainingConfig(epochs=3, early_stopping_patience=None), [counter])
    assert counter.batches == {0: 8, 1: 8, 2: 8}
    assert result.passes == 3


class Worsen(keras.callbacks.Callback):
    """Overwrites `val_accuracy` so the best epoch is a subset one (`best`) and every other
    epoch is worse: early stopping must restore its weights, and count patience from the
    first full epoch."""

    def __init__(self, best: int) -> None:
        super().__init__()
        self.best = best
        self.weights: dict[int, list[np.ndarray]] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs["val_accuracy"] = 1.0 if epoch == self.best else 0.1 * epoch
        self.weights[epoch] = [w.copy() for w in self.model.get_weights()]


@pytest.mark.parametrize("best", [0, 1])
def test_early_stopping_spans_the_subset_and_full_phases(best: int) -> None:
    worsen, net = Worsen(best), model()
    training = TrainingConfig(
        epochs=8, subset_epochs=2, subset_fraction=0.5, early_stopping_patience=2
    )
    result = fit(training, metric_callbacks=[worsen], net=net)
    assert result.best_epoch == best
    # Full epochs 2 and 3 fail to beat the subset epoch, then it stops: a worse subset epoch
    # (epoch 1 after a best epoch 0) does not use up patience.
    assert result.epochs_run == 4
    for restored, kept in zip(net.get_weights(), worsen.weights[best], strict=True):
        np.testing.assert_array_equal(restored, kept)


def test_epoch_equivalents_counts_subset_epochs_at_their_fraction() -> None:
    training = TrainingConfig(epochs=8, subset_epochs=3, subset_fraction=0.5)
    assert epoch_equivalents(training, 2, BATCHES) == 1.0
    assert epoch_equivalents(training, 5, BATCHES) == 1.5 + 2
    # Half of 7 batches is 4 whole ones: the count is of batches really trained.
    assert epoch_equivalents(training, 1, 7) == pytest.approx(4 / 7)


def test_an_all_subset_run_still_restores_its_best_epoch() -> None:
    worsen, net = Worsen(0), model()
    training = TrainingConfig(epochs=3, subset_epochs=3, subset_fraction=0.5)
    result = fit(training, metric_callbacks=[worsen], net=net)
    assert result.epochs_run == 3 and result.best_epoch == 0
    for restored, kept in zip(net.get_weights(), worsen.weights[0], strict=True):
        np.testing.assert_array_equal(restored, kept)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_float16_layers_get_loss_scaling_and_others_do_not(precision: str) -> None:
    inputs = keras.Input(shape=(5,))
    hidden = keras.layers.Dense(4, dtype=precision)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(hidden))
    opt = keras.optimizers.Adam(1e-3)
    scaled = loss_scaled(model, opt)
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    assert scaled.learning_rate == opt.learning_rate  # what the run logs reads through it
