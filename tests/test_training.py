"""Training on the tiny corpus: it learns something, and the same seed gives the same numbers."""

from __future__ import annotations

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


def test_prepare_data_reads_train_and_valid_only(data: PreparedData) -> None:
    assert data.train and data.valid
    assert {n.instrument_str for n in data.train}.isdisjoint(n.instrument_str for n in data.valid)
    assert data.stats.mean.shape == (251, 513)
    assert len(data.fingerprint) > 16


def test_same_seed_same_numbers_and_best_weights_kept(
    tiny_corpus: Path, data: PreparedData
) -> None:
    cfg = small_config(tiny_corpus, "optimizer.name=adam", "optimizer.learning_rate=0.001")
    first = train(cfg, data, verbose=0)
    second = train(cfg, data, verbose=0)
    assert first.history == second.history
    assert first.val_accuracy == second.val_accuracy
    # The returned model is the best-validation epoch's, and its accuracy is the logged best.
    assert first.val_accuracy == pytest.approx(max(first.history["val_accuracy"]), abs=1e-6)
    assert first.epochs_run == 3 and first.examples_per_second > 0
    assert first.valid.embeddings.shape == (len(data.valid), 32)
    assert np.array_equal(first.valid.labels, [n.family for n in data.valid])


def test_other_seed_other_numbers(tiny_corpus: Path, data: PreparedData) -> None:
    a = train(small_config(tiny_corpus, "seed=1", "training.epochs=1"), data, verbose=0)
    b = train(small_config(tiny_corpus, "seed=2", "training.epochs=1"), data, verbose=0)
    assert a.history["loss"] != b.history["loss"]
