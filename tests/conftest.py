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
    from nsynth_research.config import CorpusConfig
    from nsynth_research.corpus import render_corpus

    root = tmp_path_factory.mktemp("corpus") / "nsynth-gm"
    render_corpus(CorpusConfig(root=root, size="tiny"), progress=False)
    return root
