"""Which trials of a study count, and their values: one definition for the selection, the
summary and every figure, so a figure never shows a different best than the one selected."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from nsynth_research.core.errors import UserError
from nsynth_research.core.task import Objective


def trial_value(trial: FrozenTrial) -> float:
    """The objective value of a finished trial (Optuna types it optional for running ones)."""
    if trial.value is None:
        raise ValueError(f"trial {trial.number} ({trial.state.name}) has no value")
    return trial.value


def complete_trials(opt: optuna.Study) -> list[FrozenTrial]:
    """The trials selection may choose from: COMPLETE, with a value."""
    return [t for t in opt.trials if t.state == TrialState.COMPLETE and t.value is not None]


def best_trial(opt: optuna.Study, objective: Objective) -> FrozenTrial | None:
    """Best complete trial by the validation objective (ties: the earlier), or None."""
    done = complete_trials(opt)
    sign = 1.0 if objective.direction == "maximize" else -1.0
    return max(done, key=lambda t: (sign * trial_value(t), -t.number)) if done else None


def select_best(opt: optuna.Study, objective: Objective) -> FrozenTrial:
    """`best_trial`, or an error that says how to get one."""
    best = best_trial(opt, objective)
    if best is None:
        raise UserError(
            f"study {opt.study_name!r} has no completed trial yet: run `make sweep` first"
        )
    return best


def baseline_trial(opt: optuna.Study) -> FrozenTrial | None:
    """The seed baseline the study enqueued as its first trial, if it did."""
    return next((t for t in opt.trials if t.user_attrs.get("baseline")), None)
