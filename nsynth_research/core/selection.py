"""Selection by the validation objective, then the study's single look at the test split.

This is the only code that asks a task to score the test split. The read is claimed in the
study's storage before the first test prediction (atomically: see `claims`), a claimed read is
never silently repeated, not even after a crash (the FAILED evaluation still holds it), and a
study still running anywhere is not evaluated yet. FORCE reads again, and the summary then
says the test split was read more than once. So the test figure stays an honest estimate
rather than one more thing selected on.
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

from nsynth_research.core.claims import (
    ClaimLost,
    ReadClaim,
    check_ready,
    claim_test_read,
    claimed_reads,
    describe_read,
)
from nsynth_research.core.describe import NOTE_TAG
from nsynth_research.core.errors import UserError
from nsynth_research.core.runs import run_config
from nsynth_research.core.space import base_config, study_experiment
from nsynth_research.core.storage import RUN_ATTR, load_study, open_storage, storage_url
from nsynth_research.core.study import PARENT_ATTR
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import Objective, SplitReport, Task
from nsynth_research.core.tracking import STATE_TAG, log_figure, open_store, tracked_run
from nsynth_research.core.trial import STUDY_TAG

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
    #: How the evaluation run ended: FINISHED, or FAILED when it crashed after its claim.
    state: str = "FINISHED"
    #: How many times the study's test split has been claimed (1 unless FORCE was used).
    reads: int = 1


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


def study_reads(study: StudyConfig, base: Any) -> list[ReadClaim]:
    """The claimed reads of the study's test split, from its storage."""
    return claimed_reads(open_storage(storage_url(study, base)), study.name)


def previous_evaluation(task: Task, study: StudyConfig) -> Evaluation | None:
    """The study's latest claimed test evaluation, read back from its run (None if the test
    split was never claimed). A run that crashed after its claim comes back FAILED."""
    base = base_config(study, task.config_type)
    reads = study_reads(study, base)
    if not reads:
        return None
    client = open_store(base.tracking)
    return logged_evaluation(client, reads[-1].run_id, task.objective, len(reads))


def logged_evaluation(client: Any, run_id: str, objective: Objective, reads: int) -> Evaluation:
    """An evaluation run read back: its metrics, summary lines and how it ended."""
    run = client.get_run(run_id)
    p = run.data.params
    try:
        lines = mlflow.artifacts.load_text(f"runs:/{run_id}/{SUMMARY_ARTIFACT}").splitlines()
    except MlflowException:
        lines = []
    return Evaluation(
        run_id=run_id,
        trial=int(p.get("trial", -1)),
        params={k.removeprefix("trial."): v for k, v in p.items() if k.startswith("trial.")},
        objective=run.data.metrics.get(f"selected_{objective.metric}", float("nan")),
        metrics=dict(run.data.metrics),
        lines=lines,
        registered=run.data.tags.get("registered_model", ""),
        state=run.data.tags.get(STATE_TAG, run.info.status),
        reads=reads,
    )


def evaluate_study(task: Task, study: StudyConfig, *, force: bool = False) -> Evaluation:
    """Pick the best trial by the validation objective and score it once on the test split.

    Order matters: the evaluation run is created, the read is claimed for it in the study's
    storage and tagged on the parent run, and only then is the test split scored. A crash
    anywhere after the claim leaves a FAILED evaluation that still holds the read.
    """
    base = base_config(study, task.config_type)
    opt = load_study(study, base, task.objective.direction)
    parent = opt.user_attrs.get(PARENT_ATTR)
    if not parent:
        raise UserError(f"study {study.name!r} has not been run: run `make sweep` first")
    client = open_store(base.tracking)
    storage = open_storage(storage_url(study, base))
    reads = claimed_reads(storage, study.name)
    if reads and not force:
        log_refusal(study, base, parent, reads[0].run_id)
        raise UserError(
            f"study {study.name!r} was already evaluated on the test split "
            f"({describe_read(reads[0], client)}); the refusal is logged. Use "
            "`make evaluate FORCE=1` to evaluate again anyway (it is reported as read twice)."
        )
    check_ready(opt, study)
    best = select_best(opt, task.objective)
    best_run = best.user_attrs.get(RUN_ATTR)
    if not best_run:
        raise UserError(f"trial {best.number} has no MLflow run id; its run cannot be evaluated")
    config = run_config(client, best_run, task.config_type)
    lost: ReadClaim | None = None
    with tracked_run(
        base.tracking,
        run_name=f"test evaluation (trial {best.number})",
        experiment=study_experiment(study),
        parent_run_id=parent,
        tags={STUDY_TAG: study.name, "role": "evaluation", "evaluated_run_id": best_run},
    ) as run:
        mlflow.log_params(
            {"trial": best.number, **{f"trial.{k}": v for k, v in best.params.items()}}
        )
        try:
            read = claim_test_read(storage, study.name, run.info.run_id, force=force)
        except ClaimLost as exc:
            lost = exc.read
        if lost is None:
            mlflow.set_tags({"test_read": str(read.number), "test_read_forced": str(read.forced)})
            client.set_tag(parent, EVALUATED_TAG, run.info.run_id)
            client.set_tag(parent, "test_reads", str(read.number))
            report = task.score(config, best_run, "test", resamples=study.bootstrap)
            mlflow.set_tags(report.tags)
            mlflow.log_metrics(
                {**report.metrics, f"selected_{task.objective.metric}": float(best.value)}
            )
            log_artifacts(report.artifacts)
            mlflow.log_text("\n".join(report.lines) + "\n", SUMMARY_ARTIFACT)
            note = champion_note(study, best, best_run, run.info.run_id, task.objective, report)
            mlflow.set_tag(NOTE_TAG, note)
            registered = register_champion(
                client, study, best, best_run, report.model_uri, note=note
            )
        else:
            mlflow.log_text(
                f"Lost the claim on the test read to run {lost.run_id}.\n", "refusal.txt"
            )
    if lost is not None:
        client.set_tag(run.info.run_id, STATE_TAG, "REFUSED")
        raise UserError(
            f"another evaluation (run {lost.run_id}, {lost.owner}) claimed the test read of "
            f"study {study.name!r} first; nothing was read here. Its result is in that run."
        )
    return Evaluation(
        run_id=run.info.run_id,
        trial=best.number,
        params=dict(best.params),
        objective=float(best.value),
        metrics=report.metrics,
        lines=report.lines,
        registered=registered,
        reads=read.number,
    )


def log_artifacts(artifacts: dict[str, Any]) -> None:
    """Figures as PNGs, data frames as MLflow tables (shown as tables in the UI), dicts as
    JSON, anything else as text, into the active run."""
    for path, value in artifacts.items():
        if isinstance(value, plt.Figure):
            log_figure(value, path)
        elif hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
            mlflow.log_table(value, path)
        elif isinstance(value, dict | list):
            mlflow.log_text(json.dumps(value, indent=2), path)
        else:
            mlflow.log_text(str(value), path)


def champion_note(
    study: StudyConfig,
    best: FrozenTrial,
    best_run: str,
    evaluation_run: str,
    objective: Objective,
    report: SplitReport,
) -> str:
    """The evaluation run's and the model version's description: what was selected on
    what, the single test figure with its interval, the data and the runs to open."""
    headline = report.lines[0] if report.lines else "(no summary)"
    data = report.tags.get("data_fingerprint", "unknown")
    return (
        f"Champion of study {study.name}: trial {best.number} (run {best_run}), selected on "
        f"{objective.label} {best.value:.4f}. Test, read once: {headline}. Data {data}; "
        f"evaluation run {evaluation_run}."
    )


def register_champion(
    client: Any,
    study: StudyConfig,
    best: FrozenTrial,
    best_run: str,
    model_uri: str,
    *,
    note: str = "",
) -> str:
    """Register the champion's model under the study's name with the `champion` alias; the
    version carries the evaluation's description and run ids as tags."""
    name = f"nsynth-{study.name}"
    evaluation = mlflow.active_run()
    tags = {"trial": str(best.number), "run_id": best_run, "selected_value": f"{best.value:.4f}"}
    if evaluation is not None:
        tags["evaluation_run_id"] = evaluation.info.run_id
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    if note:
        client.update_model_version(name, version.version, description=note)
    client.update_registered_model(
        name,
        description=(
            f"Champion models of study {study.name}: each version is the study's best trial "
            f"by validation, scored once on the test split. @{CHAMPION_ALIAS} is the latest; "
            "`make predict AUDIO=...` and `make dream` use it."
        ),
    )
    mlflow.set_tag("registered_model", f"{name}@{CHAMPION_ALIAS} (version {version.version})")
    return f"models:/{name}@{CHAMPION_ALIAS}"


def _scores(trial: FrozenTrial) -> str:
    """All validation scores a trial logged (e.g. in- and cross-library), beside its objective."""
    scores = trial.user_attrs.get("scores") or {}
    shown = ", ".join(f"{k.removeprefix('best_')} {v:.4f}" for k, v in sorted(scores.items()))
    return f" ({shown})" if shown else ""


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
    lines.append(f"best trial {best.number}: {objective.label} {best.value:.4f}{_scores(best)}")
    for key, value in best.params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value  # 0.30000000000000004
        lines.append(f"    {key} = {shown}")
    base = baseline_trial(opt)
    if base is not None:
        if base.state == TrialState.COMPLETE:
            lines.append(
                f"seed baseline (trial {base.number}): {objective.label} {base.value:.4f} "
                f"({best.value - base.value:+.4f} for the best){_scores(base)}"
            )
        else:
            lines.append(f"seed baseline (trial {base.number}): {base.state.name}")
    if evaluation is not None and evaluation.state != "FINISHED":
        lines.append(
            f"test evaluation run {evaluation.run_id} ended {evaluation.state} after claiming "
            "the single test read: no figure to report, and the read is spent. "
            "`make evaluate FORCE=1` reads again (reported as read twice)."
        )
    elif evaluation is not None:
        times = {1: "once", 2: "twice"}.get(evaluation.reads, f"{evaluation.reads} times")
        headline, *rest = evaluation.lines or ["(no summary logged)"]
        lines.append(f"champion (trial {evaluation.trial}, test read {times}): {headline}")
        lines.extend(f"    {line}" for line in rest)
        lines.append(
            f"champion registered as {evaluation.registered}; evaluation run {evaluation.run_id}"
        )
    return "\n".join(lines)
