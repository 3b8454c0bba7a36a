"""When a study may spend its single test read: only once it is complete.

A study still running (here or on another machine) is not evaluated: it would select from part
of it. Nor is a study that stopped before n_trials (its time limit ran out, it was killed or
interrupted): selecting from three of twelve trials and reading test then spends the read on
a champion the finished study would not pick. Such a study says how far it got and names the
two ways on, continue it or read test now on purpose; a read made on purpose before n_trials is
recorded with the claim, and every later summary says it came early.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nsynth_research.core.errors import UserError
from nsynth_research.core.orchestration.liveness import Progress, progress
from nsynth_research.core.study_config import StudyConfig

#: The explicit choice to read test before n_trials: `make evaluate INCOMPLETE=1`.
INCOMPLETE_FLAG = "INCOMPLETE=1"


class StudyNotReady(Exception):
    """Trials of the study are running (here or on another machine): evaluating now would
    select from an incomplete study. Not an error: exit cleanly and evaluate later."""


class StudyIncomplete(UserError):
    """The study stopped before n_trials and nothing runs: reading test needs a choice."""


def ways_on() -> str:
    return (
        "continue it with `make sweep` (same EXPERIMENT: it resumes the study and reads test "
        f"once complete), or read test now with `make evaluate {INCOMPLETE_FLAG}` (the "
        "summary then says the read came early)"
    )


def stopped_early(study: StudyConfig, now: Progress, why: str) -> str:
    """What a sweep that ends before n_trials prints instead of a test figure."""
    return (
        f"study {study.name!r} stopped {why} with {now.finished} of {now.n_trials} trials "
        f"finished; its test split was not read. Next: {ways_on()}"
    )


def check_ready(opt: optuna.Study, study: StudyConfig, *, incomplete: bool = False) -> Progress:
    """The study's progress, once it may be evaluated: StudyNotReady while trials run
    anywhere, StudyIncomplete when it stopped before n_trials (unless `incomplete`)."""
    now = progress(opt, study.n_trials or 0)
    # Only trials a worker is running: a queued (WAITING) one nobody will start must not
    # hold the evaluation back forever.
    running = [t for t in now.running if t.state == TrialState.RUNNING]
    if running:
        raise StudyNotReady(
            f"study {study.name!r} is not finished: {now.describe_running()} still running; "
            "its test split is read once the study is complete (run `make evaluate` then)"
        )
    if study.n_trials is not None and not now.complete and not incomplete:
        raise StudyIncomplete(
            f"study {study.name!r} is incomplete: {now.finished} of {study.n_trials} trials "
            "finished and none running (its sweep was stopped by its time limit, killed or "
            f"interrupted), so its test split is not read yet. Either {ways_on()}"
        )
    return now
