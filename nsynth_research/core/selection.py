"""Selection by the validation objective, then the study's single look at the test split.

This is the only code that asks a task to score the test split. The read is claimed in the
study's storage before the first test prediction (atomically: see `claims`), a claimed read is
never silently repeated, not even after a crash (the FAILED evaluation still holds it), and a
study still running anywhere, or stopped before n_trials, is not evaluated by itself (see
`readiness`). FORCE reads again, and the summary then says the test split was read more than
once; INCOMPLETE reads an unfinished study, and every summary then says the read came early.
So the test figure stays an honest estimate rather than one more thing selected on.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import optuna
from optuna.trial import FrozenTrial, TrialState

from nsynth_research.core.describe import NOTE_TAG
from nsynth_research.core.errors import UserError
from nsynth_research.core.evaluations import EARLY_TAG, SUMMARY_ARTIFACT, Evaluation
from nsynth_research.core.evaluations import logged_evaluation as logged_evaluation
from nsynth_research.core.evaluations import previous_evaluation as previous_evaluation
from nsynth_research.core.final_fit import model_to_read
from nsynth_research.core.orchestration import (
    ClaimLost,
    ReadClaim,
    adopt_legacy,
    check_ready,
    claim_test_read,
    claimed_reads,
    describe_read,
)
from nsynth_research.core.parent_run import PARENT_ATTR
from nsynth_research.core.registry import log_artifacts, register_champion
from nsynth_research.core.runs import run_config
from nsynth_research.core.space import base_config, study_experiment
from nsynth_research.core.storage import RUN_ATTR, load_study, open_storage, storage_url
from nsynth_research.core.study_config import StudyConfig
from nsynth_research.core.task import Objective, SplitReport, Task, recorded_objective
from nsynth_research.core.tracking import STATE_TAG, open_store, tracked_run
from nsynth_research.core.trial import STUDY_TAG
from nsynth_research.core.trials import baseline_trial as baseline_trial
from nsynth_research.core.trials import select_best as select_best
from nsynth_research.core.trials import trial_value

log = logging.getLogger(__name__)

EVALUATED_TAG = "test_evaluation_run_id"


def log_refusal(study: StudyConfig, base: Any, parent: str, previous: str) -> None:
    """A REFUSED evaluation run under the parent, so the UI shows that a second look was
    asked for and not made."""
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


def evaluate_study(
    task: Task, study: StudyConfig, *, force: bool = False, incomplete: bool = False
) -> Evaluation:
    """Pick the best trial by the validation objective and score it once on the test split.

    Order matters: the evaluation run is created, the read is claimed for it in the study's
    storage (one insert naming the run) and tagged on the parent run, and only then is the
    test split scored. A crash anywhere after the claim leaves a FAILED evaluation that still
    holds the read. `incomplete` allows a study that stopped before n_trials.
    """
    # Naming the objective selects on it: a study defined with another one is refused.
    base = recorded_objective(task, base_config(study, task.config_type))
    opt = load_study(study, base, task.objective.direction)
    parent = opt.user_attrs.get(PARENT_ATTR)
    if not parent:
        raise UserError(f"study {study.name!r} has not been run: run `make sweep` first")
    client = open_store(base.tracking)
    storage = open_storage(storage_url(study, base))
    adopt_legacy(storage, study.name)
    reads = claimed_reads(storage, study.name)
    if reads and not force:
        log_refusal(study, base, parent, reads[-1].run_id)
        raise UserError(
            f"study {study.name!r} was already evaluated on the test split "
            f"({describe_read(reads[-1], client)}); the refusal is logged. Use "
            "`make evaluate FORCE=1` to evaluate again anyway (it is reported as read "
            f"{times(len(reads) + 1)})."
        )
    now = check_ready(opt, study, incomplete=incomplete)
    early = "" if now.complete else f"{now.finished} of {now.n_trials} trials"
    best = select_best(opt, task.objective)
    best_run = best.user_attrs.get(RUN_ATTR)
    if not best_run:
        raise UserError(f"trial {best.number} has no MLflow run id; its run cannot be evaluated")
    config = run_config(client, best_run, task.config_type)
    scored = model_to_read(task, study, best, best_run, config, parent)  # study.final_fit
    lost: ReadClaim | None = None
    with tracked_run(
        base.tracking,
        run_name=f"test evaluation (trial {best.number})",
        experiment=study_experiment(study),
        parent_run_id=parent,
        tags={STUDY_TAG: study.name, "role": "evaluation", "evaluated_run_id": scored.run_id},
    ) as run:
        mlflow.log_params(
            {"trial": best.number, **{f"trial.{k}": v for k, v in best.params.items()}}
        )
        try:
            read = claim_test_read(
                storage,
                study.name,
                run.info.run_id,
                force=force,
                finished=now.finished if early else None,
                n_trials=now.n_trials if early else None,
            )
        except ClaimLost as exc:
            lost = exc.read
        if lost is None:
            mlflow.set_tags({"test_read": str(read.number), "test_read_forced": str(read.forced)})
            if early:
                mlflow.set_tag(EARLY_TAG, early)
            client.set_tag(parent, EVALUATED_TAG, run.info.run_id)
            client.set_tag(parent, "test_reads", str(read.number))
            report = task.score(scored.config, scored.run_id, "test", resamples=study.bootstrap)
            report.lines.append(scored.line)
            mlflow.set_tags(report.tags)
            mlflow.log_metrics(
                {**report.metrics, f"selected_{task.objective.metric}": trial_value(best)}
            )
            log_artifacts(report.artifacts)
            mlflow.log_text("\n".join(report.lines) + "\n", SUMMARY_ARTIFACT)
            note = champion_note(study, best, best_run, run.info.run_id, task.objective, report)
            note = f"{note} {scored.line[0].upper()}{scored.line[1:]}."
            mlflow.set_tag(NOTE_TAG, note)
            registered = register_champion(
                client,
                study,
                best,
                scored.run_id,
                report.model_uri,
                note=note,
                use=task.champion_use,
            )
        else:
            mlflow.log_text(
                f"Lost the claim on the test read to run {lost.run_id}.\n", "refusal.txt"
            )
    if lost is not None:
        client.set_tag(run.info.run_id, STATE_TAG, "REFUSED")
        raise UserError(
            f"another evaluation claimed the test read of study {study.name!r} first "
            f"({describe_read(lost, client)}); nothing was read here"
        )
    return Evaluation(
        run_id=run.info.run_id,
        trial=best.number,
        params=dict(best.params),
        objective=trial_value(best),
        metrics=report.metrics,
        lines=report.lines,
        registered=registered,
        reads=read.number,
        early=early,
    )


def champion_note(
    study: StudyConfig,
    best: FrozenTrial,
    best_run: str,
    evaluation_run: str,
    objective: Objective,
    report: SplitReport,
) -> str:
    """The evaluation run's and the model version's description: the test figure of the
    metric the study selected on, with its interval, first; then the task's next figure,
    what was selected on what, the data and the runs to open."""
    headline, *rest = report.lines or ["(no summary)"]
    second = f" Also: {rest[0]}." if rest else ""
    data = report.tags.get("data_fingerprint", "unknown")
    datasets = report.tags.get("datasets", "")
    return (
        f"{headline} (read once).{second} Champion of study {study.name}: trial "
        f"{best.number} (run {best_run}), selected on {objective.label} {best.value:.4f} "
        f"(validation). Data {data}"
        + (f": {datasets}" if datasets else "")
        + f"; evaluation run {evaluation_run}."
    )


def times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _scores(trial: FrozenTrial, objective: Objective) -> str:
    """The trial's other validation scores: every objective the task offers, by label."""
    scores = trial.user_attrs.get("scores") or {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(scores.items()) if k != objective.label)
    return f" (also {shown})" if shown else ""


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
    if not complete:  # e.g. a time limit that ran out during the first trial
        return "\n".join([*lines, "no trial completed yet: nothing to select from"])
    best = select_best(opt, objective)
    lines.append(
        f"best trial {best.number}: {objective.label} {best.value:.4f} on validation"
        f"{_scores(best, objective)}"
    )
    for key, value in best.params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value  # 0.30000000000000004
        lines.append(f"    {key} = {shown}")
    base = baseline_trial(opt)
    if base is not None:
        if base.state == TrialState.COMPLETE:
            lines.append(
                f"seed baseline (trial {base.number}): {objective.label} "
                f"{trial_value(base):.4f} ({trial_value(best) - trial_value(base):+.4f} for the "
                f"best){_scores(base, objective)}"
            )
        else:
            lines.append(f"seed baseline (trial {base.number}): {base.state.name}")
    if evaluation is not None and evaluation.state == "DIED":
        lines.append(
            "the single test read was claimed by a process that died before it recorded its "
            "evaluation run: no figure to report, and the read is spent. "
            "`make evaluate FORCE=1` reads again (reported as read twice)."
        )
    elif evaluation is not None and evaluation.state != "FINISHED":
        lines.append(
            f"test evaluation run {evaluation.run_id} ended {evaluation.state} after claiming "
            "the single test read: no figure to report, and the read is spent. "
            "`make evaluate FORCE=1` reads again (reported as read twice)."
        )
    elif evaluation is not None:
        read = times(evaluation.reads)
        headline, *rest = evaluation.lines or ["(no summary logged)"]
        # The test figure of what the study selected on leads the summary.
        lines[:0] = [
            f"champion of study {opt.study_name} (trial {evaluation.trial}, test read "
            f"{read}): {headline}",
            *(f"    {line}" for line in rest),
        ]
        lines.append(
            f"champion registered as {evaluation.registered}; evaluation run {evaluation.run_id}"
        )
    if evaluation is not None and evaluation.early:
        lines.append(early_note(evaluation, best.number))
    return "\n".join(lines)


def early_note(evaluation: Evaluation, best: int) -> str:
    """What a read made before n_trials means for the figures above it."""
    note = (
        f"the test read came early, on purpose (INCOMPLETE=1), when {evaluation.early} had "
        "finished: the champion was selected from those only"
    )
    if evaluation.trial >= 0 and best != evaluation.trial:
        note += (
            f"; trial {best}, best now, finished later and has no test figure (a new read "
            "needs FORCE=1 and is reported as such)"
        )
    return note
