"""The study's own report on its parent run: the trial table and Optuna's figures."""

from __future__ import annotations

import logging
import warnings
from functools import partial
from typing import Any

import matplotlib.pyplot as plt
import optuna
from matplotlib.figure import Figure
from optuna.trial import TrialState

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.describe import NOTE_TAG, clean_float
from nsynth_research.core.plotstyle import OPTUNA, SAVE, figure_style
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
                **{f"param.{k}": clean_float(v) for k, v in t.params.items()},
            }
        )
    return rows


def readable(ax: Any, name: str, label: str) -> Figure:
    """Room for long category labels: slanted ticks, one wide panel per searched dimension,
    and the objective named on the intermediate-values plot (which takes no target name)."""
    axes = list(ax.flat) if hasattr(ax, "flat") else [ax]
    fig = axes[0].figure
    width, height = fig.get_size_inches()
    panels = len([a for a in axes if a.get_label() != "<colorbar>"])
    fig.set_size_inches(max(width, 9, 3.6 * panels if name == "slice" else 0), max(height, 5))
    for a in axes:
        for tick in a.get_xticklabels():
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
        if name == "parallel_coordinate":
            a.tick_params(axis="y", labelsize=7)
    if name == "intermediate_values":
        # Optuna counts steps from 0; runs, tags and logs count epochs from 1.
        for line in axes[0].lines:
            line.set_xdata([x + 1 for x in line.get_xdata()])
        axes[0].relim()
        axes[0].autoscale_view()
        axes[0].set_ylabel(label)
        axes[0].set_xlabel("epoch")
    if name == "slice":
        # Optuna puts its colourbar over the last panel: give it a strip of its own.
        fig.subplots_adjust(bottom=0.25, right=0.9, wspace=0.35)
        for bar in [a for a in fig.axes if a.get_label() == "<colorbar>"]:
            bar.set_position((0.92, 0.25, 0.012, 0.63))
    else:
        fig.tight_layout()
    return fig


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
    named = {"target_name": objective.label}  # never Optuna's anonymous "Objective Value"
    plots = {
        "optimization_history": partial(ovm.plot_optimization_history, **named),
        "parallel_coordinate": partial(ovm.plot_parallel_coordinate, **named),
        "slice": partial(ovm.plot_slice, **named),
        "intermediate_values": ovm.plot_intermediate_values,
    }
    if len(complete) >= 2 and any(
        len({str(t.params.get(k)) for t in complete}) > 1 for k in opt.best_params
    ):
        plots["param_importances"] = partial(ovm.plot_param_importances, **named)
    for name, plot in plots.items():
        # Optuna sets ggplot for the whole process; the context keeps it inside these plots.
        with figure_style(OPTUNA), warnings.catch_warnings():
            # Optuna flags its matplotlib plots experimental and its axes defeat tight_layout's
            # check; neither changes the picture.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                ax = plot(opt)
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials for the plot
                log.warning("skipped study plot %s: %s", name, exc)
                continue
            fig = readable(ax, name, objective.label)
            client.log_figure(parent_run_id, fig, f"figures/{name}.png", save_kwargs=SAVE)
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
    client.set_tag(parent_run_id, NOTE_TAG, outcome_note(opt, objective, metrics))


def outcome_note(opt: optuna.Study, objective: Objective, counts: dict[str, float]) -> str:
    """The parent run's description once trials ran: counts, the best trial and its run."""
    done = (
        f"Study {opt.study_name}: {len(opt.trials)} trials ({counts['trials_complete']} "
        f"complete, {counts['trials_pruned']} pruned, {counts['trials_failed']} failed)."
    )
    if not counts["trials_complete"]:
        return done
    best = opt.best_trial
    return (
        f"{done} Best: trial {best.number}, {objective.label} {best.value:.4f}, run "
        f"{best.user_attrs.get(RUN_ATTR)}; its test figure is on the 'test evaluation' child "
        "run. The trial table is trials.html; the study's figures are under figures/."
    )
