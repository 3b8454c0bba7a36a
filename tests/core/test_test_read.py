"""The study's single test read: claimed atomically before any prediction, never silently
repeated (not even after a crash), deferred while the study runs; and scoring other data.
Claims are rows of the project's own table, never Optuna studies; legacy claim studies of
older stores still count, a bare one included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from nsynth_research import cli
from nsynth_research.core.config import TrackingConfig
from nsynth_research.core.orchestration import (
    LEGACY_NAME,
    ClaimLost,
    Owner,
    ReadClaim,
    StudyNotReady,
    adopt_legacy,
    claim_test_read,
    claimed_reads,
    describe_read,
)
from nsynth_research.core.runs import CONFIG_ARTIFACT
from nsynth_research.core.selection import (
    EVALUATED_TAG,
    evaluate_study,
    format_summary,
    previous_evaluation,
)
from nsynth_research.core.space import base_config, study_experiment
from nsynth_research.core.storage import RUN_ATTR, load_study, open_storage
from nsynth_research.core.study import parent_run
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import experiment_id, open_store
from nsynth_research.core.trial import STUDY_TAG
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.task import STATS_ARTIFACT, InstrumentTask
from tests.core.procs import race_claims

REPO = Path(__file__).resolve().parents[2]
TASK = InstrumentTask()


def test_two_claims_at_once_exactly_one_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    open_storage(url)  # tables exist before the race, as after any sweep
    racers = 6
    won, lost = race_claims(url, "s", racers)
    assert len(won) == 1 and len(lost) == racers - 1
    storage = open_storage(url)
    assert [r.run_id for r in claimed_reads(storage, "s")] == [won[0].run_id]
    with pytest.raises(ClaimLost):
        claim_test_read(storage, "s", "late", force=False)
    forced = claim_test_read(storage, "s", "forced", force=True)
    assert (forced.number, forced.forced) == (2, True)
    assert claimed_reads(storage, "other") == []
    # Claims are not studies: nothing for optuna-dashboard to list.
    assert [s.study_name for s in storage.get_all_studies()] == []


def test_a_legacy_bare_claim_counts_and_moves_out_of_the_study_list(tmp_path: Path) -> None:
    """A store written before the claims table: read 1 is an Optuna study whose process was
    killed before it stored its run id. It is a spent read, not a wedge."""
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    storage.create_new_study(
        [optuna.study.StudyDirection.MAXIMIZE], LEGACY_NAME.format(study="s", number=1)
    )
    (bare,) = claimed_reads(storage, "s")
    assert (bare.number, bare.run_id) == (1, "")
    with pytest.raises(ClaimLost):
        claim_test_read(storage, "s", "late", force=False)
    assert adopt_legacy(storage, "s") == 1
    assert [s.study_name for s in storage.get_all_studies()] == ["s"]
    assert [(r.number, r.run_id) for r in claimed_reads(storage, "s")] == [(1, "")]
    assert claim_test_read(storage, "s", "forced", force=True).number == 2


def test_the_loser_of_a_claim_race_is_told_the_read_is_in_progress(tmp_path: Path) -> None:
    """The winner is still evaluating (its run RUNNING, its process alive): the loser hears
    that, not that the winner 'ended RUNNING'; once the winner's process is gone, it hears
    that the read is spent."""
    client = open_store(TrackingConfig(store=tmp_path / "mlruns"))
    running = client.create_run(client.create_experiment("unit")).info.run_id
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    claim_test_read(storage, "s", running, force=False)
    with pytest.raises(ClaimLost) as lost:
        claim_test_read(storage, "s", "loser", force=False)
    told = describe_read(lost.value.read, client)
    assert "still in progress" in told and running in told and "ended" not in told
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = ReadClaim(1, running, Owner(Owner.me().host, gone.pid, ""), 0.0, False)
    assert "with its process gone" in describe_read(dead, client)


def copy_as_trial_run(client, source: str, experiment: str, parent: str, study: str) -> str:
    """A study trial's run made from the shared tiny run: its model, config and statistics."""
    tags = client.get_run(source).data.tags
    run = client.create_run(
        experiment,
        tags={
            "model_uri": tags["model_uri"],
            "corpus_fingerprint": tags["corpus_fingerprint"],
            "data_root": tags["data_root"],
            "mlflow.parentRunId": parent,
            STUDY_TAG: study,
        },
    )
    for name in (CONFIG_ARTIFACT, STATS_ARTIFACT):
        local = mlflow.artifacts.download_artifacts(f"runs:/{source}/{name}")
        client.log_artifact(run.info.run_id, local)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture
def one_trial_study(tiny_run, tmp_path: Path):
    """A finished one-trial study on a shared-style storage, its trial the tiny run's model."""
    config, run_id = tiny_run
    body = {
        "name": f"claims-{tmp_path.name}"[:60],
        "base_config": str(REPO / "configs" / "baseline.yaml"),
        "storage": f"sqlite:///{tmp_path / 'shared-optuna.db'}",
        "overrides": {
            "data.root": str(config.data.root),
            "data.corpus": None,
            "tracking.store": str(config.tracking.store),
        },
        "n_trials": 1,
        "bootstrap": 200,
        "search_space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.4}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body))
    study = load_study_config(path)
    base = base_config(study, InstrumentConfig)
    opt = load_study(study, base, "maximize")
    parent = parent_run(study, base, opt)
    client = open_store(base.tracking)
    exp = experiment_id(base.tracking, client, study_experiment(study))
    trial_run = copy_as_trial_run(client, run_id, exp, parent, study.name)
    opt.add_trial(
        optuna.trial.create_trial(
            params={"model.dropout": 0.0},
            distributions={"model.dropout": optuna.distributions.FloatDistribution(0.0, 0.4)},
            value=0.5,
            user_attrs={RUN_ATTR: trial_run},
        )
    )
    return path, study, client, parent, trial_run


@pytest.mark.slow
def test_a_crash_after_the_claim_still_blocks_a_second_read(
    one_trial_study, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path, study, client, parent, trial_run = one_trial_study
    base = base_config(study, InstrumentConfig)
    opt = load_study(study, base, "maximize")
    argv = ["evaluate", "--experiment", str(path)]

    # A trial still running (here, or on another machine): not evaluated, exit 0.
    running = opt.ask()
    with pytest.raises(StudyNotReady, match=f"trial {running.number}"):
        evaluate_study(TASK, study)
    assert cli.main(argv) == 0 and "still running" in capsys.readouterr().out
    opt.tell(running, state=optuna.trial.TrialState.FAIL)
    assert claimed_reads(open_storage(study.storage), study.name) == []

    # Killed between the claim and the end of the evaluation.
    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-evaluation")

    monkeypatch.setattr(TASK, "score", crash)
    with pytest.raises(RuntimeError, match="killed"):
        evaluate_study(TASK, study)
    (read,) = claimed_reads(open_storage(study.storage), study.name)
    crashed = client.get_run(read.run_id)
    assert crashed.info.status == "FAILED"
    assert client.get_run(parent).data.tags[EVALUATED_TAG] == read.run_id
    monkeypatch.undo()

    # The next `make evaluate` refuses without FORCE, naming the FAILED read.
    assert cli.main(argv) == 2
    assert "ended FAILED after claiming the read" in capsys.readouterr().err

    forced = evaluate_study(TASK, study, force=True)
    assert forced.reads == 2
    assert client.get_run(forced.run_id).data.tags["test_read_forced"] == "True"
    summary = format_summary(load_study(study, base, "maximize"), TASK.objective, forced)
    assert "test read twice" in summary and "over instruments" in summary
    assert forced.metrics["n_test_instruments"] >= 1

    # DATA= pointed at the study's own test split shows that read, never a new one.
    argv_data = [*argv, "--data", str(base.data.root), "--model", trial_run]
    assert cli.main(argv_data) == 0
    shown = capsys.readouterr().out
    assert "not read again" in shown and forced.run_id in shown
    assert len(claimed_reads(open_storage(study.storage), study.name)) == 2


@pytest.mark.slow
def test_a_bare_legacy_claim_through_the_command_line(one_trial_study, capsys) -> None:
    """A store from before the claims table whose read-1 claim lost its process before its
    run id was stored: commands report a spent read instead of failing on run ''."""
    path, study, *_ = one_trial_study
    storage = open_storage(study.storage)
    storage.create_new_study(
        [optuna.study.StudyDirection.MAXIMIZE], LEGACY_NAME.format(study=study.name, number=1)
    )
    evaluation = previous_evaluation(TASK, study)
    assert evaluation is not None and evaluation.state == "DIED"
    base = base_config(study, InstrumentConfig)
    summary = format_summary(load_study(study, base, "maximize"), TASK.objective, evaluation)
    assert "claimed by a process that died before it recorded its evaluation run" in summary
    assert cli.main(["evaluate", "--experiment", str(path)]) == 2
    err = capsys.readouterr().err
    assert "died before it recorded its evaluation run" in err and "Traceback" not in err
    # The refusal moved the claim out of the study list (optuna-dashboard), still counted.
    names = [s.study_name for s in storage.get_all_studies()]
    assert names == [study.name] and len(claimed_reads(storage, study.name)) == 1
