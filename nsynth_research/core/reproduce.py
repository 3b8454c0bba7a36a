"""Re-create any logged run from its config alone and say whether the numbers came back.

Before training it compares the code version and data fingerprint logged with the original
run against the current ones, because a difference there explains a different result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from nsynth_research.core.config import ExperimentConfig, TrackingConfig
from nsynth_research.core.environment import environment_differences
from nsynth_research.core.runs import (
    OBJECTIVE_TAG,
    config_from_tree,
    epoch_metric,
    run_config_tree,
    tracked_training,
)
from nsynth_research.core.task import Task, with_objective
from nsynth_research.core.tracking import get_run, git_version, open_store

REPRODUCES_TAG = "reproduces"


@dataclass(frozen=True)
class Reproduction:
    original_run_id: str
    run_id: str
    rows: list[tuple[str, float | None, float]]
    warnings: list[str]

    @property
    def identical(self) -> bool:
        return all(orig == new for name, orig, new in self.rows[:1])

    def format_table(self) -> str:
        lines = [f"{'metric':<22} {'original':>12} {'reproduced':>12}"]
        for name, orig, new in self.rows:
            shown = "-" if orig is None else f"{orig:.6f}"
            lines.append(f"{name:<22} {shown:>12} {new:>12.6f}")
        verdict = "identical" if self.identical else "DIFFERENT"
        lines.append(
            f"{self.rows[0][0]}: {verdict} (original run {self.original_run_id}, "
            f"reproduction {self.run_id})"
        )
        return "\n".join(lines)


def version_warnings(tags: dict[str, str], fingerprint: str) -> list[str]:
    """What differs between the original run and now, in words: code, data, and the
    environment (lock file, package versions)."""
    out = []
    now = git_version()
    if tags.get("git_commit") != now["git_commit"]:
        out.append(
            f"code version differs: run used {tags.get('git_commit')}, now {now['git_commit']}"
        )
    if now["git_dirty"] == "true":
        out.append("the working tree has uncommitted changes to nsynth_research/")
    if tags.get("data_fingerprint") != fingerprint:
        out.append(
            f"data fingerprint differs: run used {tags.get('data_fingerprint')}, now {fingerprint}"
        )
    return out + environment_differences(tags)


def logged_run_config(
    task_for: Callable[[dict[str, Any]], Task], client: MlflowClient, run_id: str
) -> tuple[Task, ExperimentConfig]:
    """A logged run's config and its task, bound to the objective the config names."""
    tree = run_config_tree(client, run_id)
    task = task_for(tree)
    config = config_from_tree(tree, run_id, task.config_type)
    if "objective" not in (tree.get("training") or {}):
        # Legacy path, the only reader of OBJECTIVE_TAG: runs logged before the config held
        # `training.objective` recorded the objective they kept their best epoch by only in
        # that tag (runs older still have neither: the task's default, None). Every newer
        # run's config names it, and the reproduction logs it in its config from here on.
        legacy = get_run(client, run_id).data.tags.get(OBJECTIVE_TAG)
        training = config.training.model_copy(update={"objective": legacy})
        config = config.model_copy(update={"training": training})
    return with_objective(task, config.training.objective), config


def reproduce(
    task_for: Callable[[dict[str, Any]], Task],
    run_id: str,
    tracking: TrackingConfig,
    *,
    announce: Callable[[str], None] = print,
) -> Reproduction:
    """Retrain `run_id` from its logged config into the same experiment, tagged with its id.

    `task_for` maps the logged config to its task, so any task's run can be re-created.
    """
    client = open_store(tracking)
    original = get_run(client, run_id)
    task, config = logged_run_config(task_for, client, run_id)
    config = config.with_tracking(uri=tracking.uri, store=tracking.store)
    data = task.prepare(config)
    warnings = version_warnings(original.data.tags, data.fingerprint)
    for warning in warnings:
        announce(f"warning: {warning}")
    experiment = client.get_experiment(original.info.experiment_id).name
    tracked = tracked_training(
        task,
        config,
        data,
        experiment=experiment,
        run_name=f"reproduce {original.info.run_name}",
        tags={REPRODUCES_TAG: run_id},
        verbose=2,
    )
    r = tracked.result
    metrics = original.data.metrics
    best = task.objective.metric  # the kept epoch's value (see `runs.scored_metrics`)
    final = "val_loss"
    history = client.get_metric_history(run_id, epoch_metric(final))
    old_final = max(history, key=lambda m: m.step).value if history else None
    rows = [
        # Runs logged before the plain name held the kept epoch's value logged `best_<name>`.
        (best, metrics.get(best, metrics.get(f"best_{best}")), r.objective),
        ("best_epoch", metrics.get("best_epoch"), float(r.best_epoch + 1)),
        ("epochs_run", metrics.get("epochs_run"), float(r.epochs_run)),
        (f"final_{final}", old_final, r.history[final][-1]),
    ]
    return Reproduction(run_id, tracked.run_id, rows, warnings)
