"""Selection by validation accuracy, then the study's single look at the test split.

This is the only module that reads the test split. It refuses a second evaluation of the
same study unless forced (and logs the refusal), so the test figure stays an honest estimate
rather than one more thing selected on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from sklearn.metrics import f1_score, precision_recall_fscore_support

from nsynth_research.config import RunConfig, StudyConfig
from nsynth_research.errors import UserError
from nsynth_research.families import FAMILIES
from nsynth_research.figures import confusion_figure, embedding_figure, project_embeddings
from nsynth_research.nsynth import data_fingerprint, read_split
from nsynth_research.stats import load_or_compute_stats
from nsynth_research.study import (
    PARENT_ATTR,
    RUN_ATTR,
    STUDY_TAG,
    base_config,
    load_study,
    study_experiment,
)
from nsynth_research.tracking import (
    log_figure,
    open_store,
    run_config,
    tracked_run,
)
from nsynth_research.training import SplitOutputs, predict_split

log = logging.getLogger(__name__)

EVALUATED_TAG = "test_evaluation_run_id"
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class Evaluation:
    """The final, once-per-study test figures of the champion."""

    run_id: str
    trial: int
    params: dict[str, Any]
    val_accuracy: float
    accuracy: float
    interval: tuple[float, float]
    macro_f1: float
    n_test: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    registered: str = ""


def bootstrap_interval(
    correct: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a 0/1 vector (notes resampled)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), size=(resamples, len(correct)))
    means = correct[idx].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def per_class_scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision/recall/F1 only for families that have support in the split."""
    present = np.unique(labels).astype(int)
    p, r, f, s = precision_recall_fscore_support(
        labels, predictions, labels=present, zero_division=0
    )
    return {
        FAMILIES[c]: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(present)
    }


def select_best(opt: optuna.Study) -> FrozenTrial:
    """Best COMPLETE trial by validation accuracy (the study's objective)."""
    complete = [t for t in opt.trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(
            f"study {opt.study_name!r} has no completed trial yet: run `make sweep` first"
        )
    return max(complete, key=lambda t: (t.value, -t.number))


def baseline_trial(opt: optuna.Study) -> FrozenTrial | None:
    for t in opt.trials:
        if t.user_attrs.get("baseline"):
            return t
    return None


def log_refusal(study: StudyConfig, base: RunConfig, parent: str, previous: str) -> None:
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


def previous_evaluation(study: StudyConfig) -> Evaluation | None:
    """The study's earlier test evaluation, read back from its run (None if there is none)."""
    base = base_config(study)
    parent = load_study(study, base).user_attrs.get(PARENT_ATTR)
    if not parent:
        return None
    client = open_store(base.tracking)
    run_id = client.get_run(parent).data.tags.get(EVALUATED_TAG)
    if not run_id:
        return None
    run = client.get_run(run_id)
    m, p = run.data.metrics, run.data.params
    per_class = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/per_class.json"))
    return Evaluation(
        run_id=run_id,
        trial=int(p["trial"]),
        params={k.removeprefix("trial."): v for k, v in p.items() if k.startswith("trial.")},
        val_accuracy=m["val_accuracy"],
        accuracy=m["test_accuracy"],
        interval=(m["test_accuracy_ci_low"], m["test_accuracy_ci_high"]),
        macro_f1=m["test_macro_f1"],
        n_test=int(m["n_test"]),
        per_class=per_class,
        registered=run.data.tags.get("registered_model", ""),
    )


def evaluate_study(study: StudyConfig, *, force: bool = False) -> Evaluation:
    """Pick the best trial by validation accuracy and score it once on the test split."""
    base = base_config(study)
    opt = load_study(study, base)
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
    best = select_best(opt)
    best_run = best.user_attrs.get(RUN_ATTR)
    if not best_run:
        raise UserError(f"trial {best.number} has no MLflow run id; its run cannot be evaluated")
    config = run_config(client, best_run)
    model_uri = client.get_run(best_run).data.tags.get("model_uri")
    if not model_uri:
        raise UserError(f"run {best_run} logged no model (tracking.log_model was false)")
    root = config.data.root
    logged_fp = client.get_run(best_run).data.tags.get("corpus_fingerprint")
    if logged_fp != data_fingerprint(root, ("train", "valid")):
        raise UserError(
            f"the data under {root} changed since trial {best.number} was trained "
            f"(fingerprint {logged_fp}); re-run the sweep on the current data"
        )
    train_notes = read_split(root, "train", limit=config.data.max_notes_per_split)
    stats = load_or_compute_stats(root, train_notes, config.features, progress=False)
    test_notes = read_split(root, "test", limit=config.data.max_notes_per_split)
    model = mlflow.keras.load_model(model_uri)
    outputs = predict_split(model, test_notes, stats, config)
    with tracked_run(
        base.tracking,
        run_name=f"test evaluation (trial {best.number})",
        experiment=study_experiment(study),
        parent_run_id=parent,
        tags={
            STUDY_TAG: study.name,
            "role": "evaluation",
            "evaluated_run_id": best_run,
            "data_fingerprint": data_fingerprint(root),
        },
    ) as run:
        evaluation = log_evaluation(study, config, best, best_run, outputs, run.info.run_id)
        name = f"nsynth-{study.name}"
        version = mlflow.register_model(
            model_uri, name, tags={"trial": str(best.number), "run_id": best_run}
        )
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
        mlflow.set_tag("registered_model", f"{name}@{CHAMPION_ALIAS} (version {version.version})")
    client.set_tag(parent, EVALUATED_TAG, run.info.run_id)
    return Evaluation(**{**evaluation.__dict__, "registered": f"models:/{name}@{CHAMPION_ALIAS}"})


def log_evaluation(
    study: StudyConfig,
    config: RunConfig,
    best: FrozenTrial,
    best_run: str,
    outputs: SplitOutputs,
    run_id: str,
) -> Evaluation:
    labels, predictions = outputs.labels, outputs.predictions
    correct = (labels == predictions).astype(np.float64)
    low, high = bootstrap_interval(correct, study.bootstrap, config.seed)
    present = np.unique(labels)
    macro_f1 = float(
        f1_score(labels, predictions, labels=present, average="macro", zero_division=0)
    )
    per_class = per_class_scores(labels, predictions)
    mlflow.log_metrics(
        {
            "test_accuracy": float(correct.mean()),
            "test_accuracy_ci_low": low,
            "test_accuracy_ci_high": high,
            "test_macro_f1": macro_f1,
            "val_accuracy": float(best.value),
            "n_test": len(labels),
        }
    )
    for family, scores in per_class.items():
        mlflow.log_metrics({f"test_{k}.{family}": v for k, v in scores.items() if k != "support"})
    mlflow.log_text(json.dumps(per_class, indent=2), "per_class.json")
    mlflow.log_params({"trial": best.number, **{f"trial.{k}": v for k, v in best.params.items()}})
    log_figure(
        confusion_figure(labels, predictions, f"Test confusion matrix (trial {best.number})"),
        "figures/confusion_test.png",
    )
    for dims in (2, 3):
        points = project_embeddings(outputs.embeddings, dims, config.seed)
        log_figure(
            embedding_figure(
                points, labels, f"Test embeddings (PCA 50 -> t-SNE {dims}-D), trial {best.number}"
            ),
            f"figures/tsne_test_{dims}d.png",
        )
    return Evaluation(
        run_id=run_id,
        trial=best.number,
        params=dict(best.params),
        val_accuracy=float(best.value),
        accuracy=float(correct.mean()),
        interval=(low, high),
        macro_f1=macro_f1,
        n_test=len(labels),
        per_class=per_class,
    )


def format_summary(
    opt: optuna.Study, evaluation: Evaluation | None, seconds: float | None = None
) -> str:
    """The short end-of-sweep table: best params, val/test accuracy, and the seed baseline."""
    states = [t.state for t in opt.trials]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    lines = [
        f"study {opt.study_name}: {len(states)} trials — {complete} complete, "
        f"{pruned} pruned, {states.count(TrialState.FAIL)} failed"
        + (f", {seconds:.0f} s this run" if seconds is not None else ""),
    ]
    best = select_best(opt)
    lines.append(f"best trial {best.number}: val accuracy {best.value:.4f}")
    for key, value in best.params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value  # 0.30000000000000004
        lines.append(f"    {key} = {shown}")
    base = baseline_trial(opt)
    if base is not None:
        if base.state == TrialState.COMPLETE:
            lines.append(
                f"seed baseline (trial {base.number}): val accuracy {base.value:.4f} "
                f"({best.value - base.value:+.4f} for the best)"
            )
        else:
            lines.append(f"seed baseline (trial {base.number}): {base.state.name}")
    if evaluation is not None:
        lo, hi = evaluation.interval
        lines.append(
            f"test accuracy of the champion (trial {evaluation.trial}, read once): "
            f"{evaluation.accuracy:.4f}  95% bootstrap interval [{lo:.4f}, {hi:.4f}], "
            f"macro-F1 {evaluation.macro_f1:.4f}, {evaluation.n_test} notes"
        )
        lines.append(
            f"champion registered as {evaluation.registered}; evaluation run {evaluation.run_id}"
        )
    return "\n".join(lines)
