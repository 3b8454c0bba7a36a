"""Selection by the validation objective, then the study's single look at the test split.

This is the only code that asks a task to score the test split. It refuses a second
evaluation of the same study unless forced (and logs the refusal), so the test figure stays
an honest estimate rather than one more thing selected on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import optuna
from mlflow.exceptions import MlflowException
from optuna.trial import FrozenTrial, TrialState

from nsynth_research.core.errors import UserError
from nsynth_research.core.runs import run_config
from nsynth_research.core.space import base_config, study_experiment
from nsynth_research.core.storage import RUN_ATTR, load_study
from nsynth_research.core.study import PARENT_ATTR, STUDY_TAG
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import Objective, Task
from nsynth_research.core.tracking import log_figure, open_store, tracked_run

log = logging.getLogger(__name__)

EVALUATED_TAG = "test_evaluation_run_id"
CHAMPION_ALIAS = "champion"
SUMMARY_ARTIFACT = "summary.txt"


@dataclass(frozen=True)
class Evaluation:
    """The final, once-per-study test figures of the champion."""

    run_id: str
    trial: int
    params: dict[str, Any]
    #: The champion's validation objective (what it was selected on).
    objective: float
    #: Headline test metrics, as the task named them (e.g. test_accuracy and its interval).
    metrics: dict[str, float]
    #: The task's summary lines, headline first.
    lines: list[str] = field(default_factory=list)
    registered: str = ""


def select_best(opt: optuna.Study, objective: Objective) -> FrozenTrial:
    """Best COMPLETE trial by the validation objective; ties go to the earlier trial."""
    complete = [t for t in opt.trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(
            f"study {opt.study_name!r} has no completed trial yet: run `make sweep` first"
        )
    sign = 1.0 if objective.direction == "maximize" else -1.0
    return max(complete, key=lambda t: (sign * t.value, -t.number))


def baseline_trial(opt: optuna.Study) -> FrozenTrial | None:
    for t in opt.trials:
        if t.user_attrs.get("baseline"):
            return t
    return None


def log_refusal(study: StudyConfig, base: Any, parent: str, previous: str) -> None:
    with tracked_run(
        base.tracking,
        run_name="test evaluation refused",
        experiment=study_experiment(study),
        parent_run_id=parent,
        tags={STUDY_TAG: study.name, "role": "evaluation"},
        final_state="REFUSED",
    ):
        mlflow.log_text(
            f"The test split of study {study.name} was already evaluated by run {previous}.\n"
            "A second look would make the test set a selection set; --force overrides.\n",
            "refusal.txt",
        )


def previous_evaluation(task: Task, study: StudyConfig) -> Evaluation | None:
    """The study's earlier test evaluation, read back from its run (None if there is none)."""
    base = base_config(study, task.config_type)
    parent = load_study(study, base, task.objective.direction).user_attrs.get(PARENT_ATTR)
    if not parent:
        return None
    client = open_store(base.tracking)
    run_id = client.get_run(parent).data.tags.get(EVALUATED_TAG)
    if not run_id:
        return None
    run = client.get_run(run_id)
    p = run.data.params
    try:
        lines = mlflow.artifacts.load_text(f"runs:/{run_id}/{SUMMARY_ARTIFACT}").splitlines()
    except MlflowException:
        lines = []
    return Evaluation(
        run_id=run_id,
        trial=int(p["trial"]),
        params={k.removeprefix("trial."): v for k, v in p.items() if k.startswith("trial.")},
        objective=run.data.metrics[f"selected_{task.objective.metric}"],
        metrics=dict(run.data.metrics),
        lines=lines,
        registered=run.data.tags.get("registered_model", ""),
    )


def evaluate_study(task: Task, study: StudyConfig, *, force: bool = False) -> Evaluation:
    """Pick the best trial by the validation objective and score it once on the test split."""
    base = base_config(study, task.config_type)
    opt = load_study(study, base, task.objective.direction)
    parent = opt.user_attrs.get(PARENT_ATTR)
    if not parent:
        raise UserError(f"study {study.name!r} has not been run: run `make sweep` first")
    client = open_store(base.tracking)
    previous = client.get_run(parent).data.tags.get(EVALUATED_TAG)
    if previous and not force:
        log_refusal(study, base, parent, previous)
        raise UserError(
            f"study {study.name!r} was already evaluated on the test split (run {previous}); "
            "the refusal is logged. Use `make evaluate FORCE=1` to evaluate again anyway."
        )
    best = select_best(opt, task.objective)
    best_run = best.user_attrs.get(RUN_ATTR)
    if not best_run:
        raise UserError(f"trial {best.number} has no MLflow run id; its run cannot be evaluated")
    config = run_config(client, best_run, task.config_type)
    report = task.score(config, best_run, "test", resamples=study.bootstrap)
    with tracked_run(
        base.tracking,
        run_name=f"test evaluation (trial {best.number})",
        experiment=study_experiment(study),
        parent_run_id=parent,
        tags={
            STUDY_TAG: study.name,
            "role": "evaluation",
            "evaluated_run_id": best_run,
            **report.tags,
        },
    ) as run:
        mlflow.log_metrics(
            {**report.metrics, f"selected_{task.objective.metric}": float(best.value)}
        )
        mlflow.log_params(
            {"trial": best.number, **{f"trial.{k}": v for k, v in best.params.items()}}
        )
        log_artifacts(report.artifacts)
        mlflow.log_text("\n".join(report.lines) + "\n", SUMMARY_ARTIFACT)
        registered = register_champion(client, study, best, best_run, report.model_uri)
    client.set_tag(parent, EVALUATED_TAG, run.info.run_id)
    return Evaluation(
        run_id=run.info.run_id,
        trial=best.number,
        params=dict(best.params),
        objective=float(best.value),
        metrics=report.metrics,
        lines=report.lines,
        registered=registered,
    )


def log_artifacts(artifacts: dict[str, Any]) -> None:
    """Figures as PNGs, dicts as JSON, anything else as text, into the active run."""
    for path, value in artifacts.items():
        if isinstance(value, plt.Figure):
            log_figure(value, path)
        elif isinstance(value, dict | list):
            mlflow.log_text(json.dumps(value, indent=2), path)
        else:
            mlflow.log_text(str(value), path)


def register_champion(
    client: Any, study: StudyConfig, best: FrozenTrial, best_run: str, model_uri: str
) -> str:
    """Register the champion's model under the study's name with the `champion` alias."""
    name = f"nsynth-{study.name}"
    version = mlflow.register_model(
        model_uri, name, tags={"trial": str(best.number), "run_id": best_run}
    )
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    mlflow.set_tag("registered_model", f"{name}@{CHAMPION_ALIAS} (version {version.version})")
    return f"models:/{name}@{CHAMPION_ALIAS}"


def format_summary(
    opt: optuna.Study,
    objective: Objective,
    evaluation: Evaluation | None,
    seconds: float | None = None,
) -> str:
    """The short end-of-sweep table: best params, validation objective, test, seed baseline."""
    states = [t.state for t in opt.trials]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    lines = [
        f"study {opt.study_name}: {len(states)} trials — {complete} complete, "
        f"{pruned} pruned, {states.count(TrialState.FAIL)} failed"
        + (f", {seconds:.0f} s this run" if seconds is not None else ""),
    ]
    best = select_best(opt, objective)
    lines.append(f"best trial {best.number}: {objective.label} {best.value:.4f}")
    for key, value in best.params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value  # 0.30000000000000004
        lines.append(f"    {key} = {shown}")
    base = baseline_trial(opt)
    if base is not None:
        if base.state == TrialState.COMPLETE:
            lines.append(
                f"seed baseline (trial {base.number}): {objective.label} {base.value:.4f} "
                f"({best.value - base.value:+.4f} for the best)"
            )
        else:
            lines.append(f"seed baseline (trial {base.number}): {base.state.name}")
    if evaluation is not None:
        headline, *rest = evaluation.lines or ["(no summary logged)"]
        lines.append(f"champion (trial {evaluation.trial}, test read once): {headline}")
        lines.extend(f"    {line}" for line in rest)
        lines.append(
            f"champion registered as {evaluation.registered}; evaluation run {evaluation.run_id}"
        )
    return "\n".join(lines)
