"""Shared fixtures: one tiny rendered corpus per test session, reused read-only by tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep TensorFlow quiet and on the CPU in tests, whatever the machine has.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a `tiny` NSynth-format corpus rendered once for the whole session.

    Tests must not modify it; copy it first if a test needs to damage files.
    """
    from nsynth_research.instruments.config import CorpusConfig
    from nsynth_research.instruments.corpus.build import render_corpus

    root = tmp_path_factory.mktemp("corpus") / "nsynth-gm"
    render_corpus(CorpusConfig(root=root, size="tiny"), progress=False)
    return root


def train_tiny(corpus: Path, store: Path, *overrides: str):
    """(config, tracked run) of one small instrument training run on `corpus` into `store`."""
    from nsynth_research.core.runs import tracked_training
    from nsynth_research.instruments.config import load_config
    from nsynth_research.instruments.task import InstrumentTask

    config = load_config(None, [f"data.root={corpus}", f"tracking.store={store}", *overrides])
    task = InstrumentTask()
    return config, tracked_training(task, config, task.prepare(config, progress=False), verbose=0)


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """(config, run id) of one small tracked training run on the tiny corpus, shared read-only."""
    config, tracked = train_tiny(
        tiny_corpus,
        tmp_path_factory.mktemp("store") / "mlruns",
        "tracking.experiment=shared",
        "model.filters=[16,16,32]",
        "model.dense=[32,32]",
        "training.epochs=2",
        "optimizer.name=adam",
        "optimizer.learning_rate=0.001",
    )
    return config, tracked.run_id
