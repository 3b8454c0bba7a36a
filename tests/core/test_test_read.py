"""The study's single test read: claimed atomically before any prediction, never silently
repeated (not even after a crash), deferred while the study runs; and scoring other data."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from nsynth_research import cli
from nsynth_research.core.claims import (
    ClaimLost,
    StudyNotReady,
    claim_test_read,
    claimed_reads,
)
from nsynth_research.core.runs import CONFIG_ARTIFACT
from nsynth_research.core.selection import (
    EVALUATED_TAG,
    evaluate_study,
    format_summary,
)
from nsynth_research.core.space import base_config, study_experiment
from nsynth_research.core.storage import RUN_ATTR, load_study, open_storage
from nsynth_research.core.study import parent_run
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import experiment_id, open_store
from nsynth_research.core.trial import STUDY_TAG
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.task import STATS_ARTIFACT, InstrumentTask

REPO = Path(__file__).resolve().parents[2]
TASK = InstrumentTask()


def test_two_claims_at_once_exactly_one_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    open_storage(url)  # tables exist before the race, as after any sweep
    racers = 6
    start = threading.Barrier(racers)
    won, lost = [], []

    def claim(i: int) -> None:
        storage = open_storage(url)  # each its own connection, as separate machines
        start.wait()
        try:
            won.append(claim_test_read(storage, "s", f"run-{i}", force=False))
        except ClaimLost:
            lost.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == racers - 1
    storage = open_storage(url)
    assert [r.run_id for r in claimed_reads(storage, "s")] == [won[0].run_id]
    with pytest.raises(ClaimLost):
        claim_test_read(storage, "s", "late", force=False)
    forced = claim_test_read(storage, "s", "forced", force=True)
    assert (forced.number, forced.forced) == (2, True)
    assert claimed_reads(storage, "other") == []


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
        "corpus": None,
        "storage": f"sqlite:///{tmp_path / 'shared-optuna.db'}",
        "overrides": {
            "data.root": str(config.data.root),
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
