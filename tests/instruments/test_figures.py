"""Figures look the same whatever was drawn before them: Optuna's study plots set ggplot for
the whole process, which once turned the test confusion matrix grey (issue 16)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.colors import to_hex

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.study_report import log_study_artifacts
from nsynth_research.core.task import Objective
from nsynth_research.core.tracking import experiment_id, open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.figures import confusion_figure, embedding_figure

LABELS = np.array([0, 1, 2, 2, 3, 3, 7, 7])
PREDICTIONS = np.array([0, 1, 2, 3, 3, 3, 1, 7])


def style_of(fig: plt.Figure) -> tuple[str, str, bool]:
    """Background colours and whether grid lines cross the cells."""
    ax = fig.axes[0]
    grid = any(line.get_visible() for line in ax.get_xgridlines())
    return to_hex(fig.get_facecolor()), to_hex(ax.get_facecolor()), grid


def small_study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opt = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        first = trial.suggest_categorical("first_conv", ["seed_3x513", "band_3x32"])
        dropout = trial.suggest_float("model.dropout", 0.0, 0.5, step=0.1)
        for step in range(3):
            trial.report(dropout + step / 10, step)
        return dropout + (first == "band_3x32")

    opt.optimize(objective, n_trials=5)
    return opt


def test_confusion_matrix_after_the_study_plots_looks_as_drawn_alone(tmp_path: Path) -> None:
    alone = confusion_figure(LABELS, PREDICTIONS, "alone")
    expected = style_of(alone)
    plt.close(alone)
    base = InstrumentConfig(tracking=TrackingConfig(store=tmp_path / "mlruns"))
    client = open_store(base.tracking)
    parent = client.create_run(experiment_id(base.tracking, client, "figures")).info.run_id
    objective = Objective("val_accuracy", "maximize", "validation accuracy")
    log_study_artifacts(small_study(), base, parent, objective)
    figures = {a.path for a in client.list_artifacts(parent, "figures")}
    assert "figures/slice.png" in figures and "figures/parallel_coordinate.png" in figures

    after = confusion_figure(LABELS, PREDICTIONS, "after the study plots")
    assert style_of(after) == expected
    assert expected[1] == "#ffffff" and not expected[2]  # white cells, no grid through them
    assert to_hex(plt.rcParams["axes.facecolor"]) == "#ffffff"  # ggplot did not leak
    points = np.random.default_rng(0).normal(size=(len(LABELS), 2))
    assert to_hex(embedding_figure(points, LABELS, "t-SNE").axes[0].get_facecolor()) == "#ffffff"
    plt.close("all")


def test_study_plots_name_the_objective(tmp_path: Path) -> None:
    from optuna.visualization import matplotlib as ovm

    ax = ovm.plot_optimization_history(small_study(), target_name="validation accuracy")
    assert ax.get_ylabel() == "validation accuracy"
    plt.close("all")
    plt.style.use("default")
