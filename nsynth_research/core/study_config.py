"""The schema of a study (an experiment YAML): what to vary, how long, how to search.

It is task-agnostic: searched keys are dotted keys of whichever task's run config the
`base_config` file declares, checked against that schema before the first trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from nsynth_research.core.config import Section, flatten, load_tree, validate

#: The run-config key a study's `objective:` sets.
OBJECTIVE_KEY = "training.objective"
#: The registry alias of a study's latest champion.
CHAMPION_ALIAS = "champion"


def champion_name(study: str) -> str:
    """The registered-model name of a study's champions (one name per study)."""
    return f"nsynth-{study}"


def champion_uri(study: str) -> str:
    """The model URI that loads a study's latest champion."""
    return f"models:/{champion_name(study)}@{CHAMPION_ALIAS}"


class ParamSpec(Section):
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

    @property
    def bounds(self) -> tuple[float, float]:
        """`low` and `high` of an int or float dimension (present once validated)."""
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter has no low/high bounds")
        return self.low, self.high


class SamplerConfig(Section):
    name: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(default=4, ge=0)


class PrunerConfig(Section):
    """How trials are stopped early; epochs are the resource (`benchmarks pruning` compares).

    median: below the median of earlier trials at the same epoch. percentile: outside their
    top `percentile` per cent (Optuna's meaning: below 50 prunes more than median). patience:
    median, but only after `patience` epochs without improvement. successive_halving /
    hyperband: keep the best 1/reduction_factor at rungs min_resource * reduction_factor**k.
    wilcoxon: the trial's epoch curve is significantly below the best trial's
    (p < p_threshold). none: never.
    """

    name: Literal[
        "median", "percentile", "patience", "successive_halving", "hyperband", "wilcoxon", "none"
    ] = "median"
    n_startup_trials: int = Field(default=3, ge=0)
    n_warmup_steps: int = Field(default=2, ge=0)
    min_resource: int = Field(default=2, ge=1)
    reduction_factor: int = Field(default=3, ge=2)
    percentile: float = Field(default=75.0, gt=0.0, lt=100.0)
    patience: int = Field(default=1, ge=0)
    p_threshold: float = Field(default=0.1, gt=0.0, lt=1.0)


class FinalFitConfig(Section):
    """One more fit of the selected configuration, after the trials and before the test read,
    with these run-config overrides: e.g. a study that searched on a subsample of the train
    split fits its choice on the whole split, and the test read scores that model. Keys are
    dotted keys of the task's run config (a searched key cannot be overridden: the fit would
    no longer be the configuration that was selected)."""

    overrides: dict[str, Any] = Field(min_length=1)


class StudyConfig(Section):
    """An Optuna study over run-config keys: what to vary, how long, and how to search."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    #: The run config every trial starts from (paths relative to the working directory).
    base_config: Path = Path("configs/baseline.yaml")
    #: Dotted-key or nested overrides applied to the base before the search space.
    overrides: dict[str, Any] = Field(default_factory=dict)
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
    #: The per-epoch metric trials are compared on (the task lists what it offers, e.g.
    #: val_accuracy or val_transfer_accuracy); None: the base config's. A shorthand for the
    #: run config's `training.objective`, written into the base config (`space.base_config`),
    #: so every trial's logged config names it and only the config is read back.
    objective: str | None = None
    #: Bootstrap resamples for the test accuracy interval.
    bootstrap: int = Field(default=2000, ge=100)
    #: Fit the selected configuration once more before the test read (see `FinalFitConfig`,
    #: `final_fit`); None: the test read scores the best trial's own model.
    final_fit: FinalFitConfig | None = None

    @model_validator(mode="after")
    def _bounded(self) -> StudyConfig:
        if self.n_trials is None and self.timeout_minutes is None:
            raise ValueError("set n_trials, timeout_minutes or both, or the study never ends")
        return self

    @model_validator(mode="after")
    def _one_objective(self) -> StudyConfig:
        # Two places naming the objective could disagree; which would win is not obvious.
        set_too = flatten(self.overrides).get(OBJECTIVE_KEY)
        if self.objective is not None and set_too is not None and set_too != self.objective:
            raise ValueError(
                f"objective {self.objective!r} and overrides {OBJECTIVE_KEY} {set_too!r} "
                "disagree; set the objective once"
            )
        return self


def load_study_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Experiment YAML + `key=value` overrides -> validated StudyConfig."""
    return validate(load_tree(path, overrides), str(path), StudyConfig)
