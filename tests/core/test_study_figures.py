"""The study's figures as a reader opens them: pruned trials drawn as pruned, importances saying
how many trials they rest on, a slice grid rather than a strip, epochs from 1, no "Trial0"
legends, and Optuna's interactive figures on one self-contained page."""

from __future__ import annotations

import re
import warnings

import matplotlib.pyplot as plt
import optuna
import pytest

from nsynth_research.core.study_figures import (
    history_figure,
    importance_figure,
    parallel_figure,
    slice_figure,
    static_figures,
)
from nsynth_research.core.study_report import interactive_page
from nsynth_research.core.task import Objective

OBJECTIVE = Objective("val_transfer_accuracy", "maximize", "cross-library accuracy")
NAMES = ["network", "optimizer", "model.dropout", "model.head", "augment"]


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    """Eight trials over five choices; trials 2 and 5 pruned at epoch 2, as the pruning
    callback reports them (epoch N at step N)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opt = optuna.create_study(
        study_name="figs", direction="maximize", sampler=optuna.samplers.RandomSampler(0)
    )
    for number in range(8):
        trial = opt.ask()
        net = trial.suggest_categorical("network", ["seed_stft", "band_stft", "mel64_2d"])
        trial.suggest_categorical("optimizer", ["adam_1e-3", "adadelta_0.01"])
        dropout = trial.suggest_float("model.dropout", 0.0, 0.5, step=0.1)
        trial.suggest_categorical("model.head", ["flatten", "gap"])
        trial.suggest_categorical("augment", ["none", "spectral"])
        curve = [0.2 + 0.05 * epoch + dropout / 4 + (net == "mel64_2d") / 5 for epoch in range(3)]
        if number in (2, 5):
            for epoch, value in enumerate(curve[:2], start=1):
                trial.report(value / 2, epoch)
            opt.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        opt.tell(trial, curve[-1])
    return opt


def _legend(fig: plt.Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_history_shows_pruned_trials_and_the_best_so_far(study: optuna.Study) -> None:
    fig = history_figure(study, OBJECTIVE)
    assert _legend(fig) == ["complete (6)", "pruned, at its last epoch (2)", "best so far"]
    (ax,) = fig.axes
    pruned = ax.collections[1].get_offsets()
    assert sorted(map(tuple, pruned.tolist())) == [
        (2.0, study.trials[2].value),
        (5.0, study.trials[5].value),
    ]
    assert ax.get_ylabel() == "cross-library accuracy" and ax.get_xlabel() == "trial"
    plt.close(fig)


def test_importances_say_how_many_trials_they_rest_on(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fig = importance_figure(study, OBJECTIVE)
    title = fig.axes[0].get_title()
    assert "from 6 complete trials (few trials: a rough ranking)" in title
    assert sorted(t.get_text() for t in fig.axes[0].get_yticklabels()) == sorted(NAMES)
    plt.close(fig)


def test_slices_are_a_grid_and_parallel_ticks_name_the_choices(study: optuna.Study) -> None:
    fig = slice_figure(study, OBJECTIVE)
    width, height = fig.get_size_inches()
    assert width <= 11 and height >= 5  # rows of three panels, not one strip per choice
    assert sorted(ax.get_title() for ax in fig.axes if ax.get_visible()) == sorted(NAMES)
    plt.close(fig)
    fig = parallel_figure(study, OBJECTIVE)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"seed_stft", "band_stft", "mel64_2d", "adam_1e-3", "flatten", "gap"} <= labels
    plt.close(fig)


def test_epochs_count_from_1_and_no_trial0_legends(study: optuna.Study) -> None:
    figs = {name: draw() for name, draw in static_figures(study, OBJECTIVE).items()}
    assert set(figs) == {
        "optimization_history",
        "intermediate_values",
        "parallel_coordinate",
        "slice",
        "param_importances",
    }
    curves = figs["intermediate_values"].axes[0]
    assert curves.get_xlabel() == "epoch"
    assert min(x for line in curves.lines for x in line.get_xdata()) == 1
    for fig in figs.values():
        assert not any(text.startswith("Trial") for text in _legend(fig))
        plt.close(fig)


def test_the_interactive_page_is_self_contained(study: optuna.Study) -> None:
    page = interactive_page(study, OBJECTIVE)
    assert page.count("<script") >= 6  # plotly.js once, then one script per figure
    assert not re.search(r"<script[^>]*\bsrc=", page)  # plotly.js inline: no network needed
    assert "Plotly.newPlot" in page
    assert '"name":"Trial0"' not in page and '"name":"trial 0"' in page
    assert "Importances (fANOVA, 6 complete trials)" in page
    assert "cross-library accuracy (validation)" in page
