"""Training on the tiny corpus: it learns something, and the same seed gives the same numbers."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from nsynth_research.core.task import FitResult
from nsynth_research.instruments.config import InstrumentConfig, load_config
from nsynth_research.instruments.training import PreparedData, prepare_data, train

pytestmark = pytest.mark.slow

SMALL = ["model.filters=[16,16,32]", "model.dense=[64,32]", "training.epochs=3"]


def small_config(root: Path, *extra: str) -> InstrumentConfig:
    return load_config(None, [f"data.root={root}", *SMALL, *extra])


@pytest.fixture(scope="module")
def data(tiny_corpus: Path) -> PreparedData:
    return prepare_data(small_config(tiny_corpus), progress=False)


def test_prepare_data_splits_by_instrument(data: PreparedData) -> None:
    assert data.train and data.valid
    assert {n.instrument_str for n in data.train}.isdisjoint(n.instrument_str for n in data.valid)
    assert data.stats.mean.shape == (251, 513)


def test_prepare_data_never_reads_test(
    tiny_corpus: Path, data: PreparedData, tmp_path: Path
) -> None:
    """The same corpus without its test split prepares identically."""
    root = tmp_path / "no-test"
    shutil.copytree(tiny_corpus, root, ignore=shutil.ignore_patterns("nsynth-test", "features"))
    blind = prepare_data(small_config(root), progress=False)
    assert [n.note_str for n in blind.train] == [n.note_str for n in data.train]
    assert [n.note_str for n in blind.valid] == [n.note_str for n in data.valid]
    assert blind.fingerprint == data.fingerprint
    assert np.array_equal(blind.stats.mean, data.stats.mean)


def test_training_learns(tiny_corpus: Path, data: PreparedData) -> None:
    cfg = small_config(
        tiny_corpus, "optimizer.name=adam", "optimizer.learning_rate=0.003", "training.epochs=6"
    )
    result = train(cfg, data, verbose=0)
    loss = result.history["loss"]
    assert loss[-1] < 0.7 * loss[0], loss
    # Chance is 1/11; the tiny net fits its training notes well above it.
    assert max(result.history["accuracy"]) > 3 / 11, result.history["accuracy"]


def test_mlp_architecture_learns(tiny_corpus: Path, data: PreparedData) -> None:
    cfg = load_config(
        None,
        [
            f"data.root={tiny_corpus}",
            "model.arch=mlp",
            "model.dense=[64,32]",
            "optimizer.name=adam",
            "optimizer.learning_rate=0.003",
            "training.epochs=6",
        ],
    )
    loss = train(cfg, data, verbose=0).history["loss"]
    assert loss[-1] < 0.7 * loss[0], loss


@pytest.fixture(scope="module")
def twice(tiny_corpus: Path, data: PreparedData) -> tuple[FitResult, FitResult]:
    """One small config trained twice from the same seed."""
    cfg = small_config(tiny_corpus, "optimizer.name=adam", "optimizer.learning_rate=0.001")
    return train(cfg, data, verbose=0), train(cfg, data, verbose=0)


def test_same_seed_same_numbers(twice: tuple[FitResult, FitResult]) -> None:
    first, second = twice
    assert first.history == second.history
    assert first.objective == second.objective


def test_best_epoch_weights_are_kept(twice: tuple[FitResult, FitResult]) -> None:
    """The returned model is the best-validation epoch's: its accuracy is the logged best."""
    first = twice[0]
    assert first.epochs_run == 3
    assert first.objective == pytest.approx(max(first.history["val_accuracy"]), abs=1e-6)


def test_validation_outputs_follow_the_manifest(
    twice: tuple[FitResult, FitResult], data: PreparedData
) -> None:
    outputs = twice[0].outputs
    assert outputs.embeddings.shape == (len(data.valid), 32)  # the last dense width
    assert np.array_equal(outputs.labels, [n.family for n in data.valid])


def test_examples_per_second_counts_the_notes_trained(
    twice: tuple[FitResult, FitResult], data: PreparedData
) -> None:
    """Three full epochs are three passes over the training notes, timed without validation."""
    metrics = twice[0].metrics
    assert 0 < metrics["train_seconds"] < metrics["wall_seconds"]
    rate = len(data.train) * 3 / metrics["train_seconds"]
    assert metrics["examples_per_second"] == pytest.approx(rate, rel=1e-9)


def test_examples_per_second_counts_subset_epochs_by_their_batches(
    tiny_corpus: Path, data: PreparedData
) -> None:
    """A subset epoch trains `subset_fraction` of the batches, rounded up to whole batches."""
    cfg = small_config(
        tiny_corpus, "training.epochs=2", "training.subset_epochs=1", "training.subset_fraction=0.3"
    )
    metrics = train(cfg, data, verbose=0).metrics
    steps = math.ceil(len(data.train) / cfg.training.batch_size)
    passes = math.ceil(0.3 * steps) / steps + 1
    assert passes < 2  # the corpus has batches enough for a subset epoch to be cheaper
    rate = len(data.train) * passes / metrics["train_seconds"]
    assert metrics["examples_per_second"] == pytest.approx(rate, rel=1e-9)


def test_other_seed_other_numbers(tiny_corpus: Path, data: PreparedData) -> None:
    a = train(small_config(tiny_corpus, "seed=1", "training.epochs=1"), data, verbose=0)
    b = train(small_config(tiny_corpus, "seed=2", "training.epochs=1"), data, verbose=0)
    assert a.history["loss"] != b.history["loss"]
