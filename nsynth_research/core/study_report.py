"""The study's own report on its parent run: the trial table and Optuna's figures."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import matplotlib.pyplot as plt
import optuna
from optuna.trial import TrialState

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.storage import RUN_ATTR
from nsynth_research.core.task import Objective
from nsynth_research.core.tracking import open_store

log = logging.getLogger(__name__)


def trials_table(opt: optuna.Study, metric: str) -> list[dict[str, Any]]:
    rows = []
    for t in opt.trials:
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                metric: t.value,
                "epochs": t.user_attrs.get("epochs_run", len(t.intermediate_values)),
                "seconds": t.user_attrs.get("wall_seconds"),
                "baseline": bool(t.user_attrs.get("baseline")),
                "mlflow_run_id": t.user_attrs.get(RUN_ATTR),
                **{f"param.{k}": v for k, v in t.params.items()},
            }
        )
    return rows


def log_study_artifacts(
    opt: optuna.Study, base: ExperimentConfig, parent_run_id: str, objective: Objective
) -> None:
    """Optimisation history, importances, parallel coordinates, slices and the trial table."""
    import pandas as pd
    from optuna.visualization import matplotlib as ovm

    client = open_store(base.tracking)
    table = pd.DataFrame(trials_table(opt, objective.metric))
    client.log_text(parent_run_id, table.to_csv(index=False), "trials.csv")
    client.log_text(parent_run_id, table.to_html(index=False, na_rep=""), "trials.html")
    complete = [t for t in opt.trials if t.state == TrialState.COMPLETE]
    plots = {
        "optimization_history": ovm.plot_optimization_history,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
        "slice": ovm.plot_slice,
        "intermediate_values": ovm.plot_intermediate_values,
    }
    if len(complete) >= 2 and any(
        len({str(t.params.get(k)) for t in complete}) > 1 for k in opt.best_params
    ):
        plots["param_importances"] = ovm.plot_param_importances
    for name, plot in plots.items():
        with warnings.catch_warnings():
            # Optuna flags its matplotlib plots experimental and its axes defeat tight_layout's
            # check; neither changes the picture.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                ax = plot(opt)
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials for the plot
                log.warning("skipped study plot %s: %s", name, exc)
                continue
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            width, height = fig.get_size_inches()
            fig.set_size_inches(max(width, 9), max(height, 5))
            fig.tight_layout()
        client.log_figure(parent_run_id, fig, f"figures/{name}.png")
        plt.close(fig)
    states = [t.state for t in opt.trials]
    metrics = {
        "trials_complete": states.count(TrialState.COMPLETE),
        "trials_pruned": states.count(TrialState.PRUNED),
        "trials_failed": states.count(TrialState.FAIL),
    }
    if complete:
        metrics[f"best_{objective.metric}"] = opt.best_value
        client.set_tag(parent_run_id, "best_trial", str(opt.best_trial.number))
        client.set_tag(parent_run_id, "best_run_id", str(opt.best_trial.user_attrs.get(RUN_ATTR)))
    for key, value in metrics.items():
        client.log_metric(parent_run_id, key, value)
