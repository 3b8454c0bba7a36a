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
