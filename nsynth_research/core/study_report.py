"""The study's own report on its parent run: the trial table and Optuna's figures."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import matplotlib.pyplot as plt
import optuna
from optuna.trial import TrialState

from nsynth_research.core.config import ExperimentConfig
from nsynth_research.core.describe import NOTE_TAG, clean_float
from nsynth_research.core.plotstyle import SAVE, figure_style
from nsynth_research.core.storage import RUN_ATTR
from nsynth_research.core.study_figures import static_figures
from nsynth_research.core.task import Objective
from nsynth_research.core.tracking import open_store
from nsynth_research.core.trials import complete_trials

log = logging.getLogger(__name__)

#: Optuna's interactive figures of the study, next to the static PNGs of figures/.
INTERACTIVE = "figures.html"


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


def log_study_artifacts(
    opt: optuna.Study, base: ExperimentConfig, parent_run_id: str, objective: Objective
) -> None:
    """Optimisation history, importances, parallel coordinates, slices and the trial table."""
    import pandas as pd

    client = open_store(base.tracking)
    table = pd.DataFrame(trials_table(opt, objective.metric))
    client.log_text(parent_run_id, table.to_csv(index=False), "trials.csv")
    client.log_text(parent_run_id, table.to_html(index=False, na_rep=""), "trials.html")
    for name, draw in static_figures(opt, objective).items():
        with figure_style(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                fig = draw()
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials for the plot
                log.warning("skipped study figure %s: %s", name, exc)
                continue
        client.log_figure(parent_run_id, fig, f"figures/{name}.png", save_kwargs=SAVE)
        plt.close(fig)
    client.log_text(parent_run_id, interactive_page(opt, objective), INTERACTIVE)
    states = [t.state for t in opt.trials]
    metrics: dict[str, float] = {
        "trials_complete": states.count(TrialState.COMPLETE),
        "trials_pruned": states.count(TrialState.PRUNED),
        "trials_failed": states.count(TrialState.FAIL),
    }
    if complete_trials(opt):
        metrics[f"best_{objective.metric}"] = opt.best_value
        client.set_tag(parent_run_id, "best_trial", str(opt.best_trial.number))
        client.set_tag(parent_run_id, "best_run_id", str(opt.best_trial.user_attrs.get(RUN_ATTR)))
    for key, value in metrics.items():
        client.log_metric(parent_run_id, key, value)
    client.set_tag(parent_run_id, NOTE_TAG, outcome_note(opt, objective, metrics))


def interactive_page(opt: optuna.Study, objective: Objective) -> str:
    """Optuna's plotly figures of the study on one self-contained page (one copy of
    plotly.js, no network), each under a heading that says what it shows."""
    import optuna.visualization as ov
    from plotly.offline import get_plotlyjs

    target = f"{objective.label} (validation)"
    plots = {
        "Optimisation history (complete trials)": lambda: ov.plot_optimization_history(
            opt, target_name=target
        ),
        "Objective per epoch, every trial": lambda: (
            ov.plot_intermediate_values(opt)
            .update_xaxes(title_text="epoch")
            .update_yaxes(title_text=target)
        ),
        "Parallel coordinates (complete trials)": lambda: ov.plot_parallel_coordinate(
            opt, target_name=target
        ),
        "Slices (complete trials)": lambda: ov.plot_slice(opt, target_name=target),
        f"Importances (fANOVA, {len(complete_trials(opt))} complete trials)": lambda: (
            ov.plot_param_importances(opt, target_name=target)
        ),
    }
    sections = []
    for title, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                fig = plot()
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log.warning("skipped interactive figure %r: %s", title, exc)
                continue
        for trace in fig.data:  # "Trial0" -> "trial 0"
            if isinstance(trace.name, str) and trace.name.startswith("Trial"):
                trace.name = f"trial {trace.name.removeprefix('Trial')}"
        fig.update_layout(title=f"Study {opt.study_name}: {title}")
        sections.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Study {opt.study_name}"
        f"</title><script>{get_plotlyjs()}</script></head><body>"
        f"<p>Study {opt.study_name}, scored by {objective.label} on the validation split. "
        "Hover for values; drag to zoom; double-click to reset.</p>"
        + "".join(sections)
        + "</body></html>"
    )


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
        "run. The trial table is trials.html; the study's figures are under figures/, and "
        "interactive in figures.html."
    )
