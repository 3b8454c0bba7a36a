"""The melody task's run config: which tunes, how they become tokens, how they are split and
which network continues them, on top of the sections every task shares.

Everything that changes a tokenised corpus (corpus, subset, tokeniser) is part of the cache
key; everything that changes a result is part of the logged config, so `make reproduce` can
re-create a melody run from `config.yaml` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final, Literal

from pydantic import Field, model_validator

from nsynth_research.core.config import (
    ExperimentConfig,
    OptimizerConfig,
    Section,
    TrackingConfig,
    TrainingConfig,
)

TASK: Final = "melody"


class CorpusConfig(Section):
    """Which of music21's bundled ABC corpora (shipped in its wheel, nothing downloaded) to read.

    `essen` is the Essen folksong collection (31 files, ~8,500 tunes), `oneills` O'Neill's
    1850 (~2,000 tunes in 39 files), `ryans` Ryan's Mammoth Collection (one tune a file).
    """

    name: Literal["essen", "oneills", "ryans"] = "essen"
    #: File stems to read (e.g. [han1]); empty reads every file of the corpus.
    files: tuple[str, ...] = ()
    #: Keep only the first N tunes (in file order) of the selection, for quick runs.
    max_tunes: int | None = Field(default=None, ge=1)
    #: Folder the tokenised corpus is cached in, keyed by corpus, music21 and tokeniser.
    cache_dir: Path = Path("data/melody")
    #: Parser processes (None: one per CPU core).
    workers: int | None = Field(default=None, ge=1)


class TokenConfig(Section):
    """How a parsed tune becomes (pitch or rest, duration) events."""

    #: Durations are rounded to the nearest fraction of a quarter with this denominator at
    #: most (12 keeps triplets and sixteenths exact).
    max_denominator: int = Field(default=12, ge=1, le=96)
    #: Keep rests as events (the classic kept them); without them notes are joined up.
    rests: bool = True
    #: Train events seen fewer times than this map to UNK (vocabulary is built from train).
    min_count: int = Field(default=1, ge=1)


class SplitConfig(Section):
    """Tune-disjoint split fractions; the rest of the tunes train."""

    valid: float = Field(default=0.1, gt=0.0, lt=0.5)
    test: float = Field(default=0.1, gt=0.0, lt=0.5)
    seed: int = 0


class TransposeConfig(Section):
    """Key handling: `none` keeps written keys; `common` moves every tune's tonic to C (all
    splits, a change of representation); `augment` adds transposed copies of train tunes only,
    by every shift in [-semitones, +semitones]."""

    mode: Literal["none", "common", "augment"] = "none"
    semitones: int = Field(default=2, ge=1, le=6)


class MelodyModelConfig(Section):
    """The Char-RNN: `layers` stacked LSTMs of `units`, dropout after each, a softmax over
    the vocabulary for the event after `sequence_length` events."""

    layers: int = Field(default=3, ge=1, le=6)
    units: int = Field(default=64, ge=4)
    #: `embedding` learns a dense vector per event; `one_hot` feeds the classic one-hot
    #: vectors (a frozen identity embedding, so the model still saves and loads plainly).
    input: Literal["embedding", "one_hot"] = "embedding"
    embedding_dim: int = Field(default=32, ge=2)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    sequence_length: int = Field(default=8, ge=1, le=256)


class MelodyConfig(ExperimentConfig):
    """One melody run: corpus, tokens, split, keys and model, plus the shared sections."""

    task: Literal["melody"] = TASK
    corpus: CorpusConfig = CorpusConfig()
    tokens: TokenConfig = TokenConfig()
    split: SplitConfig = SplitConfig()
    transpose: TransposeConfig = TransposeConfig()
    model: MelodyModelConfig = MelodyModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", learning_rate=1e-3)
    #: Windows of one tune are consecutive, so the default buffer shuffles all of them.
    training: TrainingConfig = TrainingConfig(batch_size=16, epochs=10, shuffle_buffer=1_000_000)
    tracking: TrackingConfig = TrackingConfig(experiment="melody-train")

    #: Melody runs draw no t-SNE; configs logged when it was a tracking key still load.
    moved_keys: ClassVar[dict[str, str | None]] = {"tracking.tsne": None}

    @model_validator(mode="after")
    def _splits_leave_train(self) -> MelodyConfig:
        if self.split.valid + self.split.test >= 0.9:
            raise ValueError("split.valid + split.test must leave at least 10% to train")
        return self
