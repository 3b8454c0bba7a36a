"""The one typed config schema of a training run, loaded from YAML with `key=value` overrides.

A run's fully resolved config is logged with it and is enough, on its own, to re-create the
run; so everything that changes a result lives here, and nothing else does. Validation
happens here, before TensorFlow is touched, so a bad value is reported by its dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nsynth_research.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)

#: Audio facts of NSynth; the feature shape follows from them.
SAMPLE_RATE = 16_000
NUM_SAMPLES = 64_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Where the NSynth-format corpus lives and how much of it a run reads."""

    root: Path = Path("data/nsynth-gm")
    #: Cap on notes read per split (None reads all); for quick checks and tests.
    max_notes_per_split: int | None = Field(default=None, ge=1)
    #: Store train/valid features under `<root>/features/` once and read them back every
    #: epoch (about 0.5 MB per note); results are identical either way, only faster. Turn off
    #: for corpora too large for the disk (full NSynth train needs ~150 GB).
    feature_cache: bool = True


class CorpusConfig(_Section):
    """How the embedded NSynth-format default corpus is rendered from General MIDI SoundFonts."""

    #: Where the jsonwav tree (nsynth-{train,valid,test}/) is written.
    root: Path = Path("data/nsynth-gm")
    #: tiny: seconds, for tests; default: sized for the default sweep on 2 cores;
    #: full: every pitch and velocity of every mapped preset.
    size: Literal["tiny", "default", "full"] = "default"
    #: SF2/SF3 files; empty means TimGM6mb.sf2 shipped inside pretty_midi.
    soundfonts: tuple[Path, ...] = ()
    #: SoundFont file stem -> sample-library name, for files that share samples (e.g. FluidR3
    #: and its derivatives); such files' presets of one program always land in one split.
    libraries: dict[str, str] = Field(default_factory=dict)
    seed: int = 0
    valid_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)


class FeatureConfig(_Section):
    """The seed's spectral features: log(1 + scale*|STFT|), normalised by train statistics."""

    n_fft: int = Field(default=1024, ge=16)
    hop_length: int = Field(default=256, ge=1)
    log_scale: float = Field(default=1000.0, gt=0)
    norm_eps: float = Field(default=1e-4, gt=0)

    @property
    def frames(self) -> int:
        # librosa's centred STFT: one frame per hop plus one.
        return 1 + NUM_SAMPLES // self.hop_length

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


class ModelConfig(_Section):
    """The CNN: a first conv, then conv/BN/ReLU/pool blocks, then dense layers to 11 logits."""

    #: First conv kernel (time, frequency); frequency equal to the number of bins with
    #: padding "valid" collapses frequency, making the net a 1-D conv over time.
    first_kernel: tuple[int, int] = (3, 513)
    first_padding: Literal["valid", "same"] = "valid"
    #: First conv stride (time, frequency): a frequency stride makes a narrow 2-D first kernel
    #: a learned, overlapping filterbank instead of a full-resolution (and 50x costlier) 2-D map.
    first_stride: tuple[int, int] = (1, 1)
    #: Kernel (time, frequency) of every later conv.
    kernel: tuple[int, int] = (3, 1)
    #: Filters of the first conv, then of each later block; its length sets the depth.
    filters: tuple[int, ...] = (64, 64, 128, 128)
    pool: Literal["max", "average"] = "max"
    pool_size: tuple[int, int] = (3, 1)
    pool_stride: tuple[int, int] = (3, 1)
    #: Global average pooling instead of flatten before the dense layers.
    global_pool: bool = False
    #: Hidden dense widths; the last is the embedding.
    dense: tuple[int, ...] = (256, 256)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: bool = True

    @model_validator(mode="after")
    def _positive(self) -> ModelConfig:
        keys = ("first_kernel", "first_stride", "kernel", "pool_size", "pool_stride")
        for key in (*keys, "filters", "dense"):
            values = getattr(self, key)
            if not values or any(v < 1 for v in values):
                raise ValueError(f"model.{key} must be non-empty positive integers, got {values}")
        return self


class OptimizerConfig(_Section):
    """Optimizer and learning-rate schedule."""

    name: Literal["adadelta", "adam", "adamw", "sgd", "rmsprop"] = "adadelta"
    learning_rate: float = Field(default=0.01, gt=0)
    #: Used by sgd (Nesterov-free momentum) and rmsprop.
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    #: Used by adamw.
    weight_decay: float = Field(default=1e-4, ge=0.0)
    schedule: Literal["constant", "cosine", "exponential"] = "constant"
    #: Per-epoch decay factor of the exponential schedule.
    decay_rate: float = Field(default=0.9, gt=0.0, le=1.0)


class TrainingConfig(_Section):
    """How the model is fitted; early stopping watches validation only, never test."""

    batch_size: int = Field(default=32, ge=1)
    epochs: int = Field(default=20, ge=1)
    #: Epochs without val-accuracy gain before stopping (None: never stop early).
    early_stopping_patience: int | None = Field(default=5, ge=1)
    shuffle_buffer: int = Field(default=2048, ge=1)
    #: Op determinism makes the same config give the same numbers on CPU, at some speed cost.
    deterministic: bool = True
    #: float32 or mixed_float16 (GPU).
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"


class TrackingConfig(_Section):
    """Where runs are logged and what is logged with them."""

    #: MLflow tracking URI; None means a SQLite store inside `store`, artifacts beside it.
    uri: str | None = None
    store: Path = Path("mlruns")
    experiment: str = "nsynth-train"
    run_name: str | None = None
    log_model: bool = True
    #: t-SNE figure of validation embeddings.
    tsne: bool = True


class RunConfig(_Section):
    """A complete, self-sufficient description of one training run."""

    seed: int = 42
    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _shapes_fit(self) -> RunConfig:
        check_model_fits(self.model, self.features)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dict of every resolved value."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, the form logged as MLflow params."""
        return flatten(self.to_dict())


def check_model_fits(model: ModelConfig, features: FeatureConfig) -> None:
    """Walk the feature map through the network so impossible shapes fail here, by key."""
    time, freq = features.frames, features.bins
    kt, kf = model.first_kernel
    if kf > freq:
        raise ValueError(
            f"model.first_kernel frequency size {kf} exceeds the {freq} frequency bins"
        )
    if kt > time:
        raise ValueError(f"model.first_kernel time size {kt} exceeds the {time} frames")
    st, sf = model.first_stride
    if model.first_padding == "valid":
        time, freq = (time - kt) // st + 1, (freq - kf) // sf + 1
    else:
        time, freq = -(-time // st), -(-freq // sf)
    for block in range(len(model.filters)):
        (pt, pf), (st, sf) = pool_window(model, freq)
        if time < pt:
            raise ValueError(
                f"model.pool_size {list(model.pool_size)} x {len(model.filters)} blocks shrinks "
                f"time below 1 at block {block + 1} (time {time}); use fewer blocks "
                "(model.filters) or a smaller pool"
            )
        time, freq = (time - pt) // st + 1, (freq - pf) // sf + 1


def pool_window(model: ModelConfig, freq: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Pool size and stride for a map `freq` bins tall: frequency pooling is clipped to what is
    left, so one config can serve both 1-D (frequency collapsed) and 2-D first kernels."""
    (pt, pf), (st, sf) = model.pool_size, model.pool_stride
    if freq < pf:
        pf, sf = freq, max(1, freq)
    return (pt, pf), (st, sf)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': value}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating sections; a leaf in the way is an error."""
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts[: i + 1])} is a value, not a section: {key}")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`key=value` words -> nested dict; values are parsed as YAML (numbers, lists, null)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        set_dotted(tree, key.strip(), value)
    return tree


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; `extra` wins."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from a file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections, not {type(tree)}")
    return tree


def validate(tree: dict[str, Any], source: str = "config", schema: type[_M] | None = None) -> _M:
    """Dict -> schema (RunConfig by default), pydantic's report made one message naming keys."""
    try:
        return (schema or RunConfig).model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid {source}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        got = err.get("input")
        shown = (
            "" if err["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
        )
        lines.append(f"  {key}: {msg}{shown}")
    return "\n".join(lines)


def load_config(
    path: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> RunConfig:
    """YAML file (optional) + dict + `key=value` overrides -> validated RunConfig."""
    tree = read_yaml(path) if path is not None else {}
    if extra:
        tree = merge(tree, extra)
    tree = merge(tree, parse_overrides(overrides))
    return validate(tree, str(path) if path else "config")


def load_corpus_config(
    path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> CorpusConfig:
    """YAML file (optional) + `key=value` overrides -> validated CorpusConfig."""
    tree = read_yaml(path) if path is not None else {}
    tree = merge(tree, parse_overrides(overrides))
    return validate(tree, str(path) if path else "corpus config", CorpusConfig)


def save_config(config: RunConfig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_yaml())
    return path


class ParamSpec(_Section):
    """One searched dimension of a study.

    `categorical` choices are either plain values for the config key named by the parameter,
    or a mapping label -> {dotted key: value} that sets several keys together (e.g. a first
    kernel with its matching stride), so the search never proposes incoherent combinations.
    """

    type: Literal["categorical", "int", "float"]
    choices: list[Any] | dict[str, dict[str, Any]] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @model_validator(mode="after")
    def _complete(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs non-empty `choices`")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} parameter needs `low` < `high`")
        elif self.log and self.low <= 0:
            raise ValueError("a log-scaled parameter needs `low` > 0")
        return self


class SamplerConfig(_Section):
    name: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(default=4, ge=0)


class PrunerConfig(_Section):
    """Median (stop below the median curve) or Hyperband; epochs are the resource."""

    name: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(default=3, ge=0)
    n_warmup_steps: int = Field(default=2, ge=0)
    min_resource: int = Field(default=2, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class StudyConfig(_Section):
    """An Optuna study over RunConfig keys: what to vary, how long, and how to search."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    #: The run config every trial starts from (paths relative to the working directory).
    base_config: Path = Path("configs/baseline.yaml")
    #: Dotted-key or nested overrides applied to the base before the search space.
    overrides: dict[str, Any] = Field(default_factory=dict)
    #: Corpus rendered first when the base config's data.root is that corpus's missing root.
    corpus: Path | None = Path("configs/corpus.yaml")
    #: Optuna storage URL; None means SQLite inside the tracking store (mlruns/optuna.db).
    #: A PostgreSQL URL lets workers on many machines share the study.
    storage: str | None = None
    n_trials: int | None = Field(default=12, ge=1)
    timeout_minutes: float | None = Field(default=None, gt=0)
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    #: Enqueue the base config itself as the first trial, so every study is compared with it.
    enqueue_baseline: bool = True
    search_space: dict[str, ParamSpec] = Field(min_length=1)
    #: Bootstrap resamples for the test accuracy interval.
    bootstrap: int = Field(default=2000, ge=100)

    @model_validator(mode="after")
    def _bounded(self) -> StudyConfig:
        if self.n_trials is None and self.timeout_minutes is None:
            raise ValueError("set n_trials, timeout_minutes or both, or the study never ends")
        return self


def load_study_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Experiment YAML + `key=value` overrides -> validated StudyConfig."""
    tree = merge(read_yaml(path), parse_overrides(overrides))
    return validate(tree, str(path), StudyConfig)
