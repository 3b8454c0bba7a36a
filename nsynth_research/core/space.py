"""A study's search space: validated against the task's config schema before the first
trial, proposed through Optuna, and mapped back to dotted config overrides.

Bundled categorical choices (label -> several keys) keep coherent combinations together;
lists travel through Optuna as JSON strings because it stores only scalars.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import optuna

from nsynth_research.core.config import (
    ExperimentConfig,
    flatten,
    load_tree,
    set_dotted,
    validate,
)
from nsynth_research.core.describe import clean_float
from nsynth_research.core.errors import ConfigError
from nsynth_research.core.study_config import OBJECTIVE_KEY, ParamSpec, StudyConfig

_C = TypeVar("_C", bound=ExperimentConfig)


def base_config(study: StudyConfig, schema: type[_C]) -> _C:
    """The run config every trial starts from, with the study's objective as its
    `training.objective`; trials log to the study's MLflow experiment."""
    extra: dict[str, Any] = {}
    for key, value in flatten(study.overrides).items():
        set_dotted(extra, key, value)
    if study.objective is not None:
        set_dotted(extra, OBJECTIVE_KEY, study.objective)
    extra = {
        **extra,
        "tracking": {**extra.get("tracking", {}), "experiment": study_experiment(study)},
    }
    return validate(load_tree(study.base_config, extra=extra), str(study.base_config), schema)


def study_experiment(study: StudyConfig) -> str:
    return f"study-{study.name}"


def encode_choice(value: Any) -> Any:
    """Optuna stores only scalars as categorical choices; lists travel as JSON strings."""
    return (
        value if value is None or isinstance(value, bool | int | float | str) else json.dumps(value)
    )


def decode_choice(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def param_overrides(space: dict[str, ParamSpec], params: dict[str, Any]) -> dict[str, Any]:
    """Trial params -> dotted config overrides (bundled choices expand to all their keys)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = space[name]
        if isinstance(spec.choices, dict):
            if value not in spec.choices:
                # A trial stored under an older search space (or a hand-enqueued one): its
                # label means nothing now, and silently training the base config instead
                # would log a wrong param.
                raise ConfigError(
                    f"search_space.{name}: unknown choice {value!r}; the choices are "
                    f"{', '.join(map(repr, spec.choices))}"
                )
            out.update(flatten(spec.choices[value]))
        else:
            out[name] = clean_float(decode_choice(value))
    return out


def trial_config(base: _C, space: dict[str, ParamSpec], params: dict[str, Any]) -> _C:
    tree = base.to_dict()
    for key, value in param_overrides(space, params).items():
        set_dotted(tree, key, value)
    return validate(tree, "trial config", type(base))


def check_search_space(
    study: StudyConfig, base: ExperimentConfig, fixed: tuple[str, ...] = ()
) -> None:
    """Every searched key must be a real config key, outside the `fixed` sections (those the
    task prepares once per study, so a trial cannot vary them: searching them would fail
    every trial or log a param with no effect), and every choice must validate alone."""
    known = set(base.flat())
    for name, spec in study.search_space.items():
        bundles = spec.choices if isinstance(spec.choices, dict) else None
        keys = {k for b in bundles.values() for k in flatten(b)} if bundles else {name}
        for key in sorted(keys - known):
            raise ConfigError(f"search_space.{name}: {key!r} is not a config key")
        if OBJECTIVE_KEY in keys:
            raise ConfigError(
                f"search_space.{name}: {OBJECTIVE_KEY!r} cannot vary per trial: a study "
                "compares its trials on one objective. Set it with the study's `objective:`"
            )
        for key in sorted(k for k in keys if k.split(".", 1)[0] in fixed):
            raise ConfigError(
                f"search_space.{name}: {key!r} cannot vary per trial: the "
                f"{', '.join(fixed)} sections are prepared once for the whole study (data, "
                "statistics, feature cache). Set it in `overrides` and run a study per value"
            )
        probes: list[Any]
        if bundles:
            probes = list(bundles)
        elif spec.type == "categorical":
            probes = [encode_choice(c) for c in spec.choices or ()]
        else:
            probes = list(spec.bounds)
        for probe in probes:
            value = int(probe) if spec.type == "int" else probe
            try:
                trial_config(base, study.search_space, {name: value})
            except ConfigError as exc:
                raise ConfigError(f"search_space.{name} choice {probe!r}: {exc}") from None


def baseline_params(study: StudyConfig, base: ExperimentConfig) -> dict[str, Any]:
    """The search-space point that is the base config itself, to enqueue as trial 0."""
    flat = base.flat()
    params: dict[str, Any] = {}
    for name, spec in study.search_space.items():
        if isinstance(spec.choices, dict):
            match = [
                label
                for label, bundle in spec.choices.items()
                if all(flat[k] == v for k, v in flatten(bundle).items())
            ]
            if not match:
                raise ConfigError(
                    f"search_space.{name}: no choice matches the base config, so the baseline "
                    "cannot be enqueued; add it or set enqueue_baseline: false"
                )
            params[name] = match[0]
        elif spec.type == "categorical":
            encoded = [encode_choice(c) for c in spec.choices or ()]
            value = encode_choice(flat[name])
            if value not in encoded:
                raise ConfigError(
                    f"search_space.{name}: base value {flat[name]!r} is not among the choices, "
                    "so the baseline cannot be enqueued; add it or set enqueue_baseline: false"
                )
            params[name] = value
        else:
            params[name] = flat[name]
    return params


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            choices = list(spec.choices) if isinstance(spec.choices, dict) else spec.choices
            params[name] = trial.suggest_categorical(
                name, [encode_choice(c) for c in choices or ()]
            )
        elif spec.type == "int":
            step = int(spec.step or 1)
            low, high = spec.bounds
            params[name] = trial.suggest_int(name, int(low), int(high), step=step, log=spec.log)
        else:
            low, high = spec.bounds
            params[name] = trial.suggest_float(name, low, high, step=spec.step, log=spec.log)
    return params
