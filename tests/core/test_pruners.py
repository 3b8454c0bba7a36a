"""Each `pruner.name` builds the Optuna pruner it names, with the configured settings."""

from __future__ import annotations

import optuna
import pytest

from nsynth_research.core.storage import make_pruner
from nsynth_research.core.study_config import StudyConfig

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
KINDS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "patience": optuna.pruners.PatientPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}


@pytest.mark.parametrize("name", list(KINDS))
def test_pruner_by_name(name: str) -> None:
    study = StudyConfig(name="s", search_space=SPACE, pruner={"name": name})
    assert isinstance(make_pruner(study), KINDS[name])


def test_successive_halving_stops_the_worse_trial_at_its_rung() -> None:
    study = StudyConfig(
        name="s",
        search_space=SPACE,
        pruner={"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
    )
    optuna_study = optuna.create_study(direction="maximize", pruner=make_pruner(study))
    good = optuna_study.ask()
    good.report(0.9, 1)
    assert not good.should_prune()
    optuna_study.tell(good, 0.9)
    bad = optuna_study.ask()
    bad.report(0.1, 1)
    assert bad.should_prune()


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
        done.report(value, 0)
        optuna_study.tell(done, value)
    trial = optuna_study.ask()
    trial.report(0.3, 0)
    assert bool(trial.should_prune()) is pruned
