"""The selected configuration fitted once more, as the study's `final_fit` asks, before the
test read: which model that read scores, and how it was trained.

A study may search on a cheap version of its data (a subsample of a 289k-note train split)
and then want its choice trained on everything. The fit is one more tracked run under the
study's parent, "final fit (trial N)", and the test read scores its model instead of the
trial's. It reads no test data, so it runs before the read is claimed: a fit that crashes
spends nothing, and the next evaluation reuses a finished fit of the same configuration
rather than training again. Nothing here knows a task: the overrides are dotted keys of
whichever run config the study's base declares.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from nsynth_research.core.config import ExperimentConfig, flatten, set_dotted, validate
from nsynth_research.core.errors import ConfigError
from nsynth_research.core.runs import run_config, tracked_training
from nsynth_research.core.space import study_experiment
from nsynth_research.core.study_config import OBJECTIVE_KEY, StudyConfig
from nsynth_research.core.task import Task, recorded_objective
from nsynth_research.core.tracking import open_store
from nsynth_research.core.trial import STUDY_TAG

log = logging.getLogger(__name__)

ROLE = "final_fit"
#: Tag of a final-fit run naming the trial whose configuration it fitted.
FITTED_TAG = "fitted_trial"


@dataclass(frozen=True)
class ModelToRead:
    """The run whose model the test read scores, its config, and one line saying which
    model that is and how it was trained (for the summary and the run descriptions)."""

    run_id: str
    config: ExperimentConfig
    line: str


def check_final_fit(study: StudyConfig, base: ExperimentConfig) -> None:
    """Refuse, before any trial, final-fit overrides that are not config keys of `base`, that
    vary a searched key, or that change the objective."""
    if study.final_fit is None:
        return
    known = set(base.flat())
    searched = set()
    for name, spec in study.search_space.items():
        bundles = spec.choices if isinstance(spec.choices, dict) else None
        searched |= {k for b in bundles.values() for k in flatten(b)} if bundles else {name}
    for key in flatten(study.final_fit.overrides):
        if key not in known:
            raise ConfigError(f"final_fit.overrides: {key!r} is not a config key")
        if key in searched or key == OBJECTIVE_KEY:
            raise ConfigError(
                f"final_fit.overrides: {key!r} is "
                + ("searched" if key in searched else "the objective")
                + ": the final fit must be the configuration the study selected"
            )


def fit_config(study: StudyConfig, config: ExperimentConfig) -> ExperimentConfig:
    """The selected trial's config with the study's final-fit overrides."""
    assert study.final_fit is not None
    tree = config.to_dict()
    for key, value in flatten(study.final_fit.overrides).items():
        set_dotted(tree, key, value)
    return validate(tree, "final_fit.overrides", type(config))


def _changes(study: StudyConfig, config: ExperimentConfig) -> str:
    assert study.final_fit is not None
    flat = config.flat()
    return ", ".join(
        f"{key} {flat.get(key)!r} -> {value!r}"
        for key, value in flatten(study.final_fit.overrides).items()
    )


def model_to_read(
    task: Task,
    study: StudyConfig,
    best: FrozenTrial,
    best_run: str,
    config: ExperimentConfig,
    parent: str,
) -> ModelToRead:
    """The best trial's own model, or, with `final_fit`, the model of its final fit (made
    here, or a finished one of the same config found under the parent)."""
    label = task.objective.label
    if study.final_fit is None:
        return ModelToRead(
            best_run,
            config,
            f"model read: trial {best.number}'s own (run {best_run}), trained as searched; "
            f"selected on {label} {best.value:.4f}",
        )
    check_final_fit(study, config)
    final = recorded_objective(task, fit_config(study, config))
    changes = _changes(study, config)
    client = open_store(config.tracking)
    run_id = _finished_fit(client, study, parent, best.number, final)
    if run_id is None:
        log.info("final fit of trial %d: %s", best.number, changes)
        data = task.prepare(final)
        tracked = tracked_training(
            task,
            final,
            data,
            parent_run_id=parent,
            experiment=study_experiment(study),
            run_name=f"final fit (trial {best.number})",
            tags={STUDY_TAG: study.name, "role": ROLE, FITTED_TAG: str(best.number)},
            verbose=2,
            note=(
                f"Final fit of study {study.name}: trial {best.number}'s configuration (run "
                f"{best_run}, selected on {label} {best.value:.4f}) fitted once more with "
                f"{changes}; the study's test read scores this model. "
            ),
        )
        run_id = tracked.run_id
    return ModelToRead(
        run_id,
        final,
        f"model read: final fit (trial {best.number}), run {run_id}: trial {best.number}'s "
        f"configuration (selected on {label} {best.value:.4f}, run {best_run}) trained once "
        f"more with {changes}",
    )


def _finished_fit(
    client: Any, study: StudyConfig, parent: str, trial: int, config: ExperimentConfig
) -> str | None:
    """A FINISHED final fit of this trial, with this very config, under the parent."""
    experiment = client.get_experiment_by_name(study_experiment(study))
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{parent}' and tags.role = '{ROLE}' "
        f"and tags.{FITTED_TAG} = '{trial}' and tags.state = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        logged = run_config(client, run.info.run_id, type(config))
        if logged.to_dict() == config.to_dict():
            log.info("final fit of trial %d: reusing run %s", trial, run.info.run_id)
            return run.info.run_id
    return None
