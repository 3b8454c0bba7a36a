"""Config sections every task shares, and the YAML loading that turns files plus `key=value`
overrides into one validated, typed config.

A run's fully resolved config is logged with it and is enough, on its own, to re-create the
run; so everything that changes a result lives in a config, and nothing else does. Each task
declares one schema (an `ExperimentConfig` subclass) made of these shared sections plus its
own; validation happens here, before TensorFlow is touched, so a bad value is reported by
its dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nsynth_research.core.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerConfig(Section):
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


class TrainingConfig(Section):
    """How the model is fitted; early stopping watches validation only, never test."""

    batch_size: int = Field(default=32, ge=1)
    epochs: int = Field(default=20, ge=1)
    #: Epochs without a gain of the task's objective before stopping (None: never stop early).
    early_stopping_patience: int | None = Field(default=5, ge=1)
    #: The per-epoch validation metric the run keeps its best epoch by, stops early on, and a
    #: study compares trials on: one the task offers (its `objectives`, e.g. val_accuracy).
    #: It lives here, not in a run tag, so the logged config alone
    #: re-creates the run. None: the task's default; a logged run records the one it used.
    objective: str | None = None
    shuffle_buffer: int = Field(default=2048, ge=1)
    #: Softmax cross-entropy toward (1 - e) on the label and e / classes elsewhere: keeps the
    #: logits of a small training set from growing without bound on what it memorised.
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    #: Multi-fidelity start: each of the first `subset_epochs` epochs trains on a fresh random
    #: `subset_fraction` of the training batches, so a pruner can drop a poor trial after a
    #: fraction of the data instead of whole epochs (0: every epoch sees all of it).
    subset_epochs: int = Field(default=0, ge=0)
    subset_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    #: Op determinism makes the same config give the same numbers on CPU, at some speed cost.
    deterministic: bool = True
    #: float32 or mixed_float16 (GPU).
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    #: mirrored: data-parallel training over every local GPU (tf.distribute.MirroredStrategy;
    #: without GPUs, over the logical CPU devices), `batch_size` being the global batch split
    #: across them. none: TensorFlow's default placement on one device.
    distribute: Literal["none", "mirrored"] = "none"


class TrackingConfig(Section):
    """Where runs are logged and what is logged with them."""

    #: MLflow tracking URI; None means a SQLite store inside `store`, artifacts beside it.
    uri: str | None = None
    store: Path = Path("mlruns")
    #: MLflow experiment of a single run (`make train`); None: `<task>-train`. A study's
    #: trials always go to its own experiment, `study-<name>`.
    experiment: str | None = None
    run_name: str | None = None
    log_model: bool = True


class ExperimentConfig(Section):
    """The shared part of every task's run config: which task, seed, optimizer, training loop
    and tracking. A task's schema subclasses it and adds its own sections."""

    #: The task this config belongs to; it picks the schema when a logged config is read back.
    task: str
    seed: int = 42
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    tracking: TrackingConfig = TrackingConfig()

    #: Keys a task's schema once held elsewhere: old dotted key -> new one (None: dropped),
    #: so configs logged with older code still load and re-create their runs.
    moved_keys: ClassVar[dict[str, str | None]] = {}

    @model_validator(mode="before")
    @classmethod
    def _move_keys(cls, tree: Any) -> Any:
        if not isinstance(tree, dict) or not cls.moved_keys:
            return tree
        flat = flatten(tree)
        if not any(old in flat for old in cls.moved_keys):
            return tree
        for old, new in cls.moved_keys.items():
            if old in flat:
                value = flat.pop(old)
                if new is not None and new not in flat:
                    flat[new] = value
        return nest(flat)

    @model_validator(mode="after")
    def _named_experiment(self) -> ExperimentConfig:
        if self.tracking.experiment is None:
            tracking = self.tracking.model_copy(update={"experiment": f"{self.task}-train"})
            object.__setattr__(self, "tracking", tracking)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dict of every resolved value."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, the form logged as MLflow params."""
        return flatten(self.to_dict())

    def with_tracking(self, **update: Any) -> ExperimentConfig:
        """A copy logging elsewhere (e.g. reproduce into the caller's store)."""
        return self.model_copy(update={"tracking": self.tracking.model_copy(update=update)})


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


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': value} (or already nested) -> nested dict."""
    tree: dict[str, Any] = {}
    for key, value in flatten(flat).items():
        set_dotted(tree, key, value)
    return tree


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


def load_tree(
    path: Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """YAML file (optional) + nested `extra` + `key=value` overrides -> one nested dict."""
    tree = read_yaml(path) if path is not None else {}
    if extra:
        tree = merge(tree, extra)
    return merge(tree, parse_overrides(overrides))


def validate(tree: dict[str, Any], source: str, schema: type[_M]) -> _M:
    """Dict -> schema, pydantic's report made one message naming keys."""
    try:
        return schema.model_validate(tree)
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
