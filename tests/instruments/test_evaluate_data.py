"""`make evaluate DATA=...`: any logged model on any NSynth-format split, same report, its own
run; the model's own test split is refused; bad data is one clear line and exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from nsynth_research import cli
from nsynth_research.core.describe import NOTE_TAG, combine_digests
from nsynth_research.core.errors import UserError
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import NUM_SAMPLES, CorpusConfig
from nsynth_research.instruments.corpus.build import render_corpus
from nsynth_research.instruments.data.fingerprint import split_fingerprint
from nsynth_research.instruments.evaluate_data import evaluate_data

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def experiment(tmp_path: Path, config) -> Path:
    body = {
        "name": "data-eval",
        "base_config": str(REPO / "configs" / "baseline.yaml"),
        "overrides": {
            "data.root": str(config.data.root),
            "data.corpus": None,
            "tracking.store": str(config.tracking.store),
        },
        "bootstrap": 200,
        "search_space": {"model.dropout": {"type": "float", "low": 0.0, "high": 0.4}},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_any_model_on_other_corpora_and_bare_wav_folders(
    tiny_run, tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config, run_id = tiny_run
    other = render_corpus(
        CorpusConfig(root=tmp_path / "seed1", size="tiny", seed=1), progress=False
    ).root
    score = evaluate_data(run_id, other, "test", config.tracking, resamples=200)
    assert "over instruments" in score.lines[1] and not score.reused
    run = open_store(config.tracking).get_run(score.run_id)
    assert run.data.tags["evaluated_run_id"] == run_id
    assert run.data.tags["split_fingerprint"] == split_fingerprint(other, "test")
    # Its description leads with the figure, and it, the data tag and the Dataset agree.
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "seed1/test"
    assert run.data.tags["data_fingerprint"] == combine_digests([dataset.dataset.digest])
    note = run.data.tags[NOTE_TAG]
    assert note.startswith("test accuracy on seed1/test (TimGM6mb presets): ")
    assert run.data.tags["data_fingerprint"] in note and dataset.dataset.digest in note
    experiment_note = open_store(config.tracking).get_experiment(run.info.experiment_id)
    assert "make evaluate" in experiment_note.tags[NOTE_TAG]
    m = run.data.metrics
    assert m["test_accuracy_ci_low"] <= m["test_accuracy"] <= m["test_accuracy_ci_high"]
    assert m["n_test_instruments"] >= 3 and "test_macro_f1_ci_low" in m

    # NSynth-named WAVs with no examples.json, through the command line.
    bare = tmp_path / "bare" / "nsynth-valid" / "audio"
    shutil.copytree(other / "nsynth-valid" / "audio", bare)
    argv = ["evaluate", "--experiment", str(experiment(tmp_path, config)), "--model", run_id]
    assert cli.main([*argv, "--data", str(tmp_path / "bare"), "--split", "valid"]) == 0
    out = capsys.readouterr().out
    assert "valid accuracy" in out and "instruments" in out and "logged as run" in out

    # The test split the model's own corpus holds out is not scored here.
    with pytest.raises(UserError, match="is the test split of the corpus it was trained on"):
        evaluate_data(run_id, tiny_corpus, "test", config.tracking)

    # Bad input: one clear line, exit 2.
    wrong = tmp_path / "wrong" / "nsynth-test" / "audio"
    wrong.mkdir(parents=True)
    sf.write(wrong / "bass_acoustic_000-040-100.wav", np.zeros(NUM_SAMPLES), 44_100)
    for data, split, phrase in (
        (tmp_path / "missing", "test", "does not exist"),
        (other, "holdout", "unknown split"),
        (tmp_path / "bare", "test", "not found"),
        (tmp_path / "wrong", "test", "44100"),
    ):
        capsys.readouterr()
        assert cli.main([*argv, "--data", str(data), "--split", split]) == 2
        err = capsys.readouterr().err.strip()
        assert phrase in err and "\n" not in err, err
