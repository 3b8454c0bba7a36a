"""The project's figures: each says what it was computed on, looks the same whatever was
drawn before it, and leaves matplotlib's global settings as it found them (Optuna's matplotlib
plots set ggplot for the whole process, which would turn a confusion matrix grey)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optuna
import pytest
from matplotlib.colors import to_hex
from mlflow import MlflowClient

from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.study_figures import static_figures
from nsynth_research.core.study_report import log_study_artifacts
from nsynth_research.core.task import Objective
from nsynth_research.core.tracking import experiment_id, open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.figures import confusion_figure, embedding_figure

LABELS = np.array([0, 1, 2, 2, 3, 3, 7, 7])
PREDICTIONS = np.array([0, 1, 2, 3, 3, 3, 1, 7])
OBJECTIVE = Objective("val_accuracy", "maximize", "validation accuracy")


def style_of(fig: plt.Figure) -> tuple[str, str, bool]:
    """Background colours and whether grid lines cross the cells."""
    ax = fig.axes[0]
    grid = any(line.get_visible() for line in ax.get_xgridlines())
    return to_hex(fig.get_facecolor()), to_hex(ax.get_facecolor()), grid


def small_study(first_step: int = 1) -> optuna.Study:
    """Five trials of three epochs, reported from `first_step` (trials report epoch N at step
    N; studies stored with Optuna's count from 0 are read too)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opt = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        first = trial.suggest_categorical("first_conv", ["seed_3x513", "band_3x32"])
        dropout = trial.suggest_float("model.dropout", 0.0, 0.5, step=0.1)
        for epoch in range(3):
            trial.report(dropout + epoch / 10, first_step + epoch)
        return dropout + (first == "band_3x32")

    opt.optimize(objective, n_trials=5)
    return opt


def own_settings() -> dict[str, Any]:
    """A user's own matplotlib settings (not matplotlib's defaults, so a figure that resets
    the style for good is caught too); returns them all."""
    plt.rcParams.update({"font.size": 13.0, "axes.grid": True, "axes.facecolor": "#fafafa"})
    return dict(plt.rcParams)


@pytest.fixture(autouse=True)
def global_style() -> Iterator[dict[str, Any]]:
    """The user's settings the test runs under, restored after it whatever it did, so no test
    here changes how a later test's figures look."""
    with matplotlib.rc_context():
        yield own_settings()
    plt.close("all")


@dataclass(frozen=True)
class StudyFigures:
    #: Artifact path -> figure, for every figure `log_study_artifacts` logged.
    logged: dict[str, plt.Figure]
    #: matplotlib's global settings before and after it ran.
    before: dict[str, Any]
    after: dict[str, Any]


@pytest.fixture(scope="module")
def study_figures(tmp_path_factory: pytest.TempPathFactory) -> StudyFigures:
    """The study report's figures on a small study, drawn once for the tests that read them."""
    logged: dict[str, plt.Figure] = {}
    log_figure = MlflowClient.log_figure

    def keep(self: MlflowClient, run_id: str, figure: Any, artifact_file: str, **kw: Any) -> None:
        logged[artifact_file] = figure
        log_figure(self, run_id, figure, artifact_file, **kw)

    store = tmp_path_factory.mktemp("figures") / "mlruns"
    with matplotlib.rc_context(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(MlflowClient, "log_figure", keep)
        before = own_settings()
        base = InstrumentConfig(tracking=TrackingConfig(store=store))
        client = open_store(base.tracking)
        parent = client.create_run(experiment_id(base.tracking, client, "figures")).info.run_id
        log_study_artifacts(small_study(), base, parent, OBJECTIVE)
        after = dict(plt.rcParams)
    assert {a.path for a in client.list_artifacts(parent, "figures")} == set(logged)
    return StudyFigures(logged, before, after)


def test_study_plots_leave_the_global_style_unchanged(study_figures: StudyFigures) -> None:
    assert "figures/optimization_history.png" in study_figures.logged
    assert study_figures.after == study_figures.before


def test_confusion_matrix_after_ggplot_looks_as_drawn_alone() -> None:
    expected = style_of(confusion_figure(LABELS, PREDICTIONS, "alone"))
    assert expected[1] == "#ffffff" and not expected[2]  # white cells, no grid through them
    with matplotlib.rc_context():
        plt.style.use("ggplot")  # what Optuna's plots do to the process
        assert style_of(confusion_figure(LABELS, PREDICTIONS, "after ggplot")) == expected


def test_figures_leave_the_global_style_unchanged(global_style: dict[str, Any]) -> None:
    confusion_figure(LABELS, PREDICTIONS, "valid")
    embedding_figure(np.zeros((len(LABELS), 2)), LABELS, "t-SNE")
    assert dict(plt.rcParams) == global_style


def test_study_plots_name_the_objective(study_figures: StudyFigures) -> None:
    label = OBJECTIVE.label
    for name in ("optimization_history", "slice", "intermediate_values"):
        assert study_figures.logged[f"figures/{name}.png"].axes[0].get_ylabel() == label, name
    parallel = study_figures.logged["figures/parallel_coordinate.png"]
    bars = [a for a in parallel.axes if a.get_label() == "<colorbar>"]
    assert [a.get_ylabel() for a in bars] == [label]


def test_logged_epoch_curves_count_epochs_from_1(study_figures: StudyFigures) -> None:
    ax = study_figures.logged["figures/intermediate_values.png"].axes[0]
    assert ax.get_xlabel() == "epoch"
    assert [list(line.get_xdata()) for line in ax.lines] == [[1, 2, 3]] * len(ax.lines)


def test_epoch_curves_of_a_study_counted_from_0_start_at_1() -> None:
    ax = static_figures(small_study(first_step=0), OBJECTIVE)["intermediate_values"]().axes[0]
    assert [list(line.get_xdata()) for line in ax.lines] == [[1, 2, 3]] * len(ax.lines)


def test_confusion_matrix_says_what_it_was_computed_on() -> None:
    ax = confusion_figure(LABELS, PREDICTIONS, "valid split").axes[0]
    assert ax.get_title() == ("valid split\naccuracy 0.750 on 8 notes (counts; colour = row share)")
    # Families that occur neither as truth nor as prediction get no row.
    names = ["bass", "brass", "flute", "guitar", "reed"]
    assert [t.get_text() for t in ax.get_yticklabels()] == names


def test_embedding_legend_counts_each_family() -> None:
    points = np.random.default_rng(0).normal(size=(len(LABELS), 2))
    ax = embedding_figure(points, LABELS, "t-SNE of valid").axes[0]
    assert ax.get_title() == "t-SNE of valid"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["bass (1)", "brass (1)", "flute (2)", "guitar (2)", "reed (2)"]
