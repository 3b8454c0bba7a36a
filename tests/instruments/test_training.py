"""Training on the tiny corpus: it learns something, and the same seed gives the same numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nsynth_research.instruments.config import InstrumentConfig, load_config
from nsynth_research.instruments.training import PreparedData, prepare_data, train

pytestmark = pytest.mark.slow

SMALL = ["model.filters=[16,16,32]", "model.dense=[64,32]", "training.epochs=3"]


def small_config(root: Path, *extra: str) -> InstrumentConfig:
    return load_config(None, [f"data.root={root}", *SMALL, *extra])


@pytest.fixture(scope="module")
def data(tiny_corpus: Path) -> PreparedData:
    return prepare_data(small_config(tiny_corpus), progress=False)


def test_prepare_data_reads_train_and_valid_only(
    tiny_corpus: Path, data: PreparedData, tmp_path: Path
) -> None:
    assert data.train and data.valid
    assert {n.instrument_str for n in data.train}.isdisjoint(n.instrument_str for n in data.valid)
    assert data.stats.mean.shape == (251, 513)
    assert len(data.fingerprint) > 16
    # The same corpus without its test split prepares identically: nothing reads test.
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


def test_same_seed_same_numbers_and_best_weights_kept(
    tiny_corpus: Path, data: PreparedData
) -> None:
    cfg = small_config(tiny_corpus, "optimizer.name=adam", "optimizer.learning_rate=0.001")
    first = train(cfg, data, verbose=0)
    second = train(cfg, data, verbose=0)
    assert first.history == second.history
    assert first.objective == second.objective
    # The returned model is the best-validation epoch's, and its accuracy is the logged best.
    assert first.objective == pytest.approx(max(first.history["val_accuracy"]), abs=1e-6)
    assert first.epochs_run == 3 and first.metrics["examples_per_second"] > 0
    assert first.outputs.embeddings.shape == (len(data.valid), 32)
    assert np.array_equal(first.outputs.labels, [n.family for n in data.valid])


def test_other_seed_other_numbers(tiny_corpus: Path, data: PreparedData) -> None:
    a = train(small_config(tiny_corpus, "seed=1", "training.epochs=1"), data, verbose=0)
    b = train(small_config(tiny_corpus, "seed=2", "training.epochs=1"), data, verbose=0)
    assert a.history["loss"] != b.history["loss"]
