"""Crash safety and scale-out: what keeps many processes on many machines honest about one
study. The rest of the core reaches it only through the names below (an import-linter
contract), so a study's single-worker path reads without it.

What each guarantee rests on, and where:
- `process`: every run and trial records its owner (host, pid, start time, via psutil), so
  a SIGKILLed process is told from a slow one; workers are spawned and die with their sweep.
- `orphans`: the first command that opens a store closes runs whose owner is gone, and the
  Optuna trial of such a run with it.
- `liveness`: trials of dead workers are failed (owner gone here, heartbeat stale anywhere)
  and their slots refilled; a trial that finds the n_trials slots taken is surplus.
- `definition`: a study's definition is stored with it; another YAML under its name is refused.
- `readiness`: a study is read on test only when complete (or explicitly, INCOMPLETE=1).
- `claims`: the single test read is claimed with its run in one insert, atomic on every
  database Optuna supports, and never silently repeated.
- `outages`: a full disk, read-only store, unreachable database or vanished file is one line.
- `urls`: passwords in storage URLs are masked everywhere they could be logged or shown.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nsynth_research.core.orchestration.claims import (
        LEGACY_NAME,
        ClaimLost,
        ReadClaim,
        adopt_legacy,
        claim_test_read,
        claimed_reads,
        describe_read,
    )
    from nsynth_research.core.orchestration.definition import check_definition
    from nsynth_research.core.orchestration.liveness import (
        FINISHED,
        HOLDING,
        RUN_ATTR,
        URI_ATTR,
        Progress,
        claim_trial,
        close_trial_run,
        free_slots,
        progress,
        reap,
        surplus,
    )
    from nsynth_research.core.orchestration.orphans import STATE_TAG, close_orphaned_runs
    from nsynth_research.core.orchestration.outages import machine_failure, quiet_machine_failures
    from nsynth_research.core.orchestration.process import (
        Owner,
        limit_threads,
        spawn_workers,
        stop_with_parent,
    )
    from nsynth_research.core.orchestration.readiness import (
        StudyNotReady,
        check_ready,
        stopped_early,
    )
    from nsynth_research.core.orchestration.urls import (
        STORAGE_ENV,
        TRACKING_ENV,
        has_password,
        redact,
    )

#: Each name of the interface -> the module that defines it, imported on first use, so a
#: command that needs none of it (the command line parsing its arguments) stays light.
_WHERE = {
    "ClaimLost": "claims",
    "LEGACY_NAME": "claims",
    "ReadClaim": "claims",
    "adopt_legacy": "claims",
    "claim_test_read": "claims",
    "claimed_reads": "claims",
    "describe_read": "claims",
    "check_definition": "definition",
    "FINISHED": "liveness",
    "HOLDING": "liveness",
    "Progress": "liveness",
    "RUN_ATTR": "liveness",
    "URI_ATTR": "liveness",
    "claim_trial": "liveness",
    "close_trial_run": "liveness",
    "free_slots": "liveness",
    "progress": "liveness",
    "reap": "liveness",
    "surplus": "liveness",
    "STATE_TAG": "orphans",
    "close_orphaned_runs": "orphans",
    "machine_failure": "outages",
    "quiet_machine_failures": "outages",
    "Owner": "process",
    "limit_threads": "process",
    "spawn_workers": "process",
    "stop_with_parent": "process",
    "StudyNotReady": "readiness",
    "check_ready": "readiness",
    "stopped_early": "readiness",
    "STORAGE_ENV": "urls",
    "TRACKING_ENV": "urls",
    "has_password": "urls",
    "redact": "urls",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "FINISHED",
    "HOLDING",
    "LEGACY_NAME",
    "RUN_ATTR",
    "STATE_TAG",
    "STORAGE_ENV",
    "TRACKING_ENV",
    "URI_ATTR",
    "ClaimLost",
    "Owner",
    "Progress",
    "ReadClaim",
    "StudyNotReady",
    "adopt_legacy",
    "check_definition",
    "check_ready",
    "claim_test_read",
    "claim_trial",
    "claimed_reads",
    "close_orphaned_runs",
    "close_trial_run",
    "describe_read",
    "free_slots",
    "has_password",
    "limit_threads",
    "machine_failure",
    "progress",
    "quiet_machine_failures",
    "reap",
    "redact",
    "spawn_workers",
    "stop_with_parent",
    "stopped_early",
    "surplus",
]
