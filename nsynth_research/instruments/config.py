"""The instrument-family task's run config: data, features and the model (an architecture
from `models.registry`, the seed CNN by default), on top of the sections every task shares
(seed, optimizer, training loop, tracking), and the corpus config the embedded data is
rendered from.

The model is checked against the feature shape here, through the architecture's own layer
plan, so an impossible shape fails at load time by its key, before TensorFlow starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from nsynth_research.core.config import ExperimentConfig, Section, load_tree, validate
from nsynth_research.instruments.models.cnn import CnnConfig
from nsynth_research.instruments.models.plan import Architecture
from nsynth_research.instruments.models.registry import ModelSection

#: The seed CNN's section, the `model:` a config without `model.arch` holds.
ModelConfig = CnnConfig

#: Audio facts of NSynth; the feature shape follows from them.
SAMPLE_RATE = 16_000
NUM_SAMPLES = 64_000
TASK: Final = "instruments"


class DataConfig(Section):
    """Where the NSynth-format corpus lives and how much of it a run reads."""

    root: Path = Path("data/nsynth-gm")
    #: The embedded corpus recipe (`make data`) rendered first when `root` is that corpus's
    #: root and still missing; None: the data must already be there (real NSynth).
    corpus: Path | None = Path("configs/corpus.yaml")
    #: Cap on notes read per split (None reads all); for quick checks and tests.
    max_notes_per_split: int | None = Field(default=None, ge=1)
    #: Train on at most this many notes of each instrument, spread over its pitches and
    #: velocities, deterministically (`data.subsample.per_instrument`); None: every note. A
    #: study searches on such a subsample, then its `final_fit` sets None to fit the chosen
    #: configuration once on the whole train split before the test read.
    max_notes_per_instrument: int | None = Field(default=None, ge=1)
    #: Store train/valid features under `<root>/features/` once and read them back every
    #: epoch (a linear STFT note is about 0.5 MB as float32); results are identical either
    #: way, only faster. auto: per front-end, by its size, float32 if it fits in half the
    #: free disk, else float16, else off (full NSynth train needs ~145 GB of STFT as
    #: float32), and a front-end already cached keeps its dtype, so a study never fills two.
    #: See `features.cache.choose_cache`; `make clean-cache` removes them.
    feature_cache: bool | Literal["auto"] = True
    #: Stored dtype when the cache is on (not auto): float16 halves disk and reads.
    cache_dtype: Literal["float32", "float16"] = "float32"
    #: Library-held-out fold (see `data.folds`): train and validate in library on these
    #: sample libraries only, and score transfer on the other libraries' presets whose samples
    #: no training preset plays (`val_transfer_accuracy`). Empty: train on everything.
    train_libraries: tuple[str, ...] = ()


class CorpusConfig(Section):
    """How the embedded NSynth-format default corpus is rendered from General MIDI SoundFonts."""

    #: Where the jsonwav tree (nsynth-{train,valid,test}/) is written.
    root: Path = Path("data/nsynth-gm")
    #: tiny: seconds, for tests; default: sized for the default sweep on 2 cores;
    #: full: every pitch of each family's plausible range at all five velocities;
    #: nsynth: NSynth's own grid, every piano key 21-108 at all five velocities (the notes a
    #: preset cannot sound are dropped as silent, as NSynth dropped them).
    size: Literal["tiny", "default", "full", "nsynth"] = "default"
    #: SF2/SF3 files; empty means TimGM6mb.sf2 shipped inside pretty_midi.
    soundfonts: tuple[Path, ...] = ()
    #: SoundFont file stem -> sample-library name, for files that share samples (e.g. FluidR3
    #: and its derivatives); such files' presets of one program always land in one split.
    libraries: dict[str, str] = Field(default_factory=dict)
    seed: int = 0
    valid_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)


#: Bumped whenever the feature code computes different values for the same settings, so
#: cached features and statistics of the older code are not reused.
FEATURE_CODE_VERSION = 1


class FeatureConfig(Section):
    """The seed's spectral features: log(1 + scale*|STFT|), normalised by train statistics.

    Every field that changes feature values is part of the feature-cache and statistics keys
    (`content_key`), so features made with one setting are never read back as another's.
    """

    #: stft: the seed's n_fft//2+1 linear bins; logmel: the same magnitudes summed into
    #: `n_mels` mel bands (librosa's Slaney filters) before the log, 4x smaller at 128 bands.
    #: pcen: the mel bands through per-channel energy normalisation (Wang et al. 2017,
    #: librosa's defaults) instead of the log: each band divided by its own smoothed recent
    #: energy, so loudness and a SoundFont's fixed EQ matter less than how energy evolves.
    kind: Literal["stft", "logmel", "pcen"] = "stft"
    n_fft: int = Field(default=1024, ge=16)
    hop_length: int = Field(default=256, ge=1)
    #: Mel bands of `kind: logmel` (unused by stft).
    n_mels: int = Field(default=128, ge=1)
    log_scale: float = Field(default=1000.0, gt=0)
    norm_eps: float = Field(default=1e-4, gt=0)
    #: FFT precision of the TensorFlow path. float64 matches librosa within 1e-3 even in the
    #: near-empty bins between partials; float32 is faster and matches it on normalised
    #: features within the tolerance tests/instruments/test_spectrogram.py states.
    fft_precision: Literal["float64", "float32"] = "float64"

    @model_validator(mode="after")
    def _mel_fits(self) -> FeatureConfig:
        if self.kind != "stft" and self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(
                f"features.n_mels {self.n_mels} exceeds the {self.n_fft // 2 + 1} STFT bins"
            )
        return self

    def content_key(self) -> dict[str, object]:
        """What decides the raw feature values, for the feature-cache and statistics keys:
        the feature code's version and the settings that change features (not `norm_eps`,
        which only enters the normalisation, nor `n_mels` for linear STFT features)."""
        key: dict[str, object] = {
            "code": FEATURE_CODE_VERSION,
            "kind": self.kind,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "log_scale": self.log_scale,
            "fft_precision": self.fft_precision,
        }
        if self.kind != "stft":
            key["n_mels"] = self.n_mels
        return key

    @property
    def frames(self) -> int:
        # librosa's centred STFT: one frame per hop plus one.
        return 1 + NUM_SAMPLES // self.hop_length

    @property
    def bins(self) -> int:
        """Feature height: linear STFT bins, or mel bands."""
        return self.n_fft // 2 + 1 if self.kind == "stft" else self.n_mels


class AugmentConfig(Section):
    """Random changes to training batches only (never validation or test), on the cached
    features, so the feature cache stays useful (see `augment` for why not on audio).

    All zero (the default) is no augmentation: the seed's training, batch for batch.
    """

    #: Random level change, uniform in +-gain_db dB, applied exactly in the
    #: log(1 + scale*|S|) domain (a recording level is not a timbre).
    gain_db: float = Field(default=0.0, ge=0.0, le=40.0)
    #: Random spectral tilt, uniform in +-tilt_db dB from the lowest to the highest bin:
    #: another microphone, room or SoundFont filter setting.
    tilt_db: float = Field(default=0.0, ge=0.0, le=40.0)
    #: SpecAugment: this many frequency (time) masks per note, each up to the width in bins
    #: (frames), set to the train mean.
    freq_masks: int = Field(default=0, ge=0, le=8)
    freq_mask_width: int = Field(default=8, ge=1)
    time_masks: int = Field(default=0, ge=0, le=8)
    time_mask_width: int = Field(default=16, ge=1)
    #: Delay the onset by up to this many frames (silence before it).
    time_shift: int = Field(default=0, ge=0)
    #: Mixup: each batch mixed with a shuffled copy of itself, weight ~ Beta(a, a) (0: off).
    mixup_alpha: float = Field(default=0.0, ge=0.0, le=10.0)

    @property
    def active(self) -> bool:
        return any(
            (
                self.gain_db,
                self.tilt_db,
                self.freq_masks,
                self.time_masks,
                self.time_shift,
                self.mixup_alpha,
            )
        )


class FiguresConfig(Section):
    """What a run draws beside its confusion matrix."""

    #: t-SNE picture of the validation notes' embeddings (PCA to 50 dimensions first).
    tsne: bool = True


class InstrumentConfig(ExperimentConfig):
    """A complete, self-sufficient description of one instrument-family training run."""

    task: Literal["instruments"] = TASK
    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    model: ModelSection = CnnConfig()
    augment: AugmentConfig = AugmentConfig()
    figures: FiguresConfig = FiguresConfig()

    moved_keys: ClassVar[dict[str, str | None]] = {"tracking.tsne": "figures.tsne"}

    @model_validator(mode="after")
    def _shapes_fit(self) -> InstrumentConfig:
        check_model_fits(self.model, self.features)
        return self


def check_model_fits(model: Architecture, features: FeatureConfig) -> None:
    """Lay the architecture's plan over the feature shape: a layer that does not fit raises
    ValueError naming its key, at load time, before TensorFlow starts."""
    model.plan(features.frames, features.bins)


def load_config(
    path: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> InstrumentConfig:
    """YAML file (optional) + dict + `key=value` overrides -> validated InstrumentConfig."""
    tree = load_tree(path, overrides, extra)
    return validate(tree, str(path) if path else "config", InstrumentConfig)


def load_corpus_config(
    path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> CorpusConfig:
    """YAML file (optional) + `key=value` overrides -> validated CorpusConfig."""
    tree = load_tree(path, overrides)
    return validate(tree, str(path) if path else "corpus config", CorpusConfig)
