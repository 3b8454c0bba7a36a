"""Each `pruner.name` stops (and keeps) trials as its settings say, on synthetic studies whose
finished trials reported a rising curve from 0.50 to 0.68 the way training reports epochs."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from nsynth_research.core.storage import make_pruner
from nsynth_research.core.study_config import StudyConfig

# PatientPruner and WilcoxonPruner are flagged experimental by Optuna; that is not a failure.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
#: Four finished trials, nine epochs each, every one better than the one before.
HISTORY = [[0.5 + 0.05 * trial + 0.01 * epoch for epoch in range(9)] for trial in range(4)]
POOR = [0.1] * 9
BEST = [0.95] * 9
#: Improving every epoch, but below every finished trial throughout.
POOR_BUT_IMPROVING = [0.1 + 0.01 * epoch for epoch in range(9)]
#: Poor, and below its best from epoch 5 on.
POOR_AND_STALLED = [0.3] * 4 + [0.2] * 5
KINDS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "patience": optuna.pruners.PatientPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}


def run(study: optuna.Study, curve: list[float]) -> int | None:
    """One trial reporting `curve` and asking after each epoch, as a trial's pruning callback
    does (epoch N at step N, from 1): the epoch it was pruned at, or None when it ran on."""
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return epoch
    study.tell(trial, curve[-1])
    return None


def study_of(pruner: dict[str, Any], history: list[list[float]] = HISTORY) -> optuna.Study:
    """A study pruned by `make_pruner` with these settings, after `history` ran to the end."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = StudyConfig(name="s", search_space=SPACE, pruner=pruner)
    # A fixed name: Hyperband assigns trials to brackets by hashing it with the trial number.
    study = optuna.create_study(
        study_name="synthetic", direction="maximize", pruner=make_pruner(config)
    )
    assert [run(study, curve) for curve in history] == [None] * len(history)
    return study


@pytest.mark.parametrize("name", list(KINDS))
def test_pruner_by_name(name: str) -> None:
    study = StudyConfig(name="s", search_space=SPACE, pruner={"name": name})
    assert isinstance(make_pruner(study), KINDS[name])


@pytest.mark.parametrize(
    ("pruner", "history", "epoch"),
    [
        # n_warmup_steps epochs are never pruned; the first prunable one is the next.
        ({"name": "median", "n_startup_trials": 2, "n_warmup_steps": 2}, HISTORY, 3),
        ({"name": "median", "n_startup_trials": 2, "n_warmup_steps": 5}, HISTORY, 6),
        ({"name": "percentile", "percentile": 25.0, "n_warmup_steps": 2}, HISTORY, 3),
        # The first rung is at epoch min_resource.
        ({"name": "successive_halving", "min_resource": 1, "reduction_factor": 2}, HISTORY, 1),
        ({"name": "successive_halving", "min_resource": 3, "reduction_factor": 2}, HISTORY, 3),
        ({"name": "hyperband", "min_resource": 3, "reduction_factor": 3}, HISTORY * 2, 3),
        # n epochs all below the best trial's have p = 1 / 2**n: 4 reach p < 0.1, 7 p < 0.01.
        ({"name": "wilcoxon", "p_threshold": 0.1, "n_warmup_steps": 2}, HISTORY, 4),
        ({"name": "wilcoxon", "p_threshold": 0.01, "n_warmup_steps": 2}, HISTORY, 7),
    ],
)
def test_poor_trial_is_pruned_at_the_configured_epoch(
    pruner: dict[str, Any], history: list[list[float]], epoch: int
) -> None:
    assert run(study_of(pruner, history), POOR) == epoch


@pytest.mark.parametrize("name", list(KINDS))
def test_trial_better_than_all_before_it_is_kept(name: str) -> None:
    history = HISTORY * 2 if name == "hyperband" else HISTORY
    assert run(study_of({"name": name, "n_startup_trials": 2}, history), BEST) is None


def test_none_never_prunes() -> None:
    assert run(study_of({"name": "none"}), POOR) is None


def test_median_waits_for_its_startup_trials() -> None:
    """Four finished trials are fewer than five startup trials: nothing is compared yet."""
    assert (
        run(study_of({"name": "median", "n_startup_trials": 5, "n_warmup_steps": 0}), POOR) is None
    )


@pytest.mark.parametrize(("patience", "epoch"), [(0, 5), (2, 7)])
def test_patience_prunes_a_poor_trial_only_once_it_stalls(patience: int, epoch: int) -> None:
    """Median pruning, held back until the trial has stayed below its best for `patience`
    epochs after the first such epoch (epoch 5)."""
    pruner = {"name": "patience", "patience": patience, "n_startup_trials": 2, "n_warmup_steps": 0}
    assert run(study_of(pruner), POOR_AND_STALLED) == epoch
    assert run(study_of(pruner), POOR_BUT_IMPROVING) is None
    plain = {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}
    assert run(study_of(plain), POOR_BUT_IMPROVING) == 1


@pytest.mark.parametrize(
    "name",
    [
        "median",
        "percentile",
        "wilcoxon",
    ],
)
def test_no_pruner_stops_a_trial_within_its_warmup_epochs(name: str) -> None:
    pruner = {"name": name, "n_startup_trials": 2, "n_warmup_steps": 5, "p_threshold": 0.1}
    assert run(study_of(pruner), POOR) == 6


@pytest.mark.parametrize(("percentile", "pruned"), [(25.0, True), (75.0, False)])
def test_percentile_keeps_the_top_percent(percentile: float, pruned: bool) -> None:
    """`percentile` is the share kept (Optuna's meaning), not the cut: 0.3 among 0.1-0.4 is
    outside the top 25% but inside the top 75%."""
    study = StudyConfig(
        name="s",
        search_space=SPACE,
        pruner={
            "name": "percentile",
            "percentile": percentile,
            "n_startup_trials": 0,
            "n_warmup_steps": 0,
        },
    )
    optuna_study = optuna.create_study(direction="maximize", pruner=make_pruner(study))
    for value in (0.1, 0.2, 0.3, 0.4):
        done = optuna_study.ask()
        done.report(value, 1)
        optuna_study.tell(done, value)
    trial = optuna_study.ask()
    trial.report(0.3, 1)
    assert bool(trial.should_prune()) is pruned
