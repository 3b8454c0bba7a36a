"""A tiny tracked melody run end to end: logged like any task's, reproduced to the same
validation loss, scored on test tunes against n-grams, and generated from at the command
line, with one clear line and exit code 2 for each kind of bad input."""

from __future__ import annotations

import mlflow
import pytest

from nsynth_research.cli import main
from nsynth_research.core.reproduce import reproduce
from nsynth_research.core.tracking import open_store
from nsynth_research.tasks import task_for

pytestmark = pytest.mark.slow


def _store(config) -> list[str]:
    return ["--store", str(config.tracking.store)]


def test_run_logs_melody_metrics_vocab_and_baselines(melody_run):
    config, run_id = melody_run
    run = open_store(config.tracking).get_run(run_id)
    m = run.data.metrics
    assert run.data.tags["task"] == "melody"
    for key in ("best_val_perplexity", "val_perplexity", "val_bits_per_event", "val_accuracy"):
        assert key in m
    assert all(f"val_perplexity_{n}gram" in m for n in range(1, 6))
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/vocab.json")


def test_reproduce_gives_the_identical_validation_loss(melody_run):
    config, run_id = melody_run
    result = reproduce(task_for, run_id, config.tracking, announce=lambda _: None)
    assert result.identical, result.format_table()
    final = dict((name, (a, b)) for name, a, b in result.rows)["final_val_loss"]
    assert final[0] == final[1]


def test_test_read_scores_network_and_ngrams_on_the_same_tunes(melody_run):
    from nsynth_research.melody.task import MelodyTask

    config, run_id = melody_run
    report = MelodyTask().score(config, run_id, "test", resamples=200)
    m = report.metrics
    assert m["test_perplexity_ci_low"] <= m["test_perplexity"] <= m["test_perplexity_ci_high"]
    assert all(f"test_perplexity_{n}gram" in m for n in range(1, 6))
    assert report.lines[0].startswith("test perplexity")


def test_generate_writes_and_logs_exactly_the_requested_bars(melody_run, tmp_path, capsys):
    import json
    from fractions import Fraction

    config, run_id = melody_run
    out = tmp_path / "gen"
    code = main(["generate", "--model", run_id, "--bars", "3", "--out", str(out), *_store(config)])
    assert code == 0, capsys.readouterr().err
    made = json.loads((out / "melody.json").read_text())
    from nsynth_research.melody.tokens import parse_event

    beats = sum(parse_event(t).duration for t in made["sampled"])
    bar_line = [ln for ln in capsys.readouterr().out.splitlines() if "generated 3 bars" in ln]
    bar = Fraction(bar_line[0].split(" of ")[1].split()[0])
    assert beats == 3 * bar
    for name in ("melody.mid", "melody.wav", "piano_roll.png", "melody.html"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--bars", "0"], "BARS=0"),
        (["--primer", "C4/1 Q9/1"], "is not a pitch"),
        (["--primer", "C1/7/13"], "not in the model's vocabulary"),
        (["--primer", "{tmp}/broken.mid"], "could not be read"),
        (["--primer", "{tmp}/chord.abc"], "chord"),
        (["--primer", "{tmp}/missing.abc"], "not found"),
    ],
)
def test_bad_generate_input_is_one_line_and_exit_code_2(
    melody_run, tmp_path, capsys, extra, message
):
    (tmp_path / "broken.mid").write_bytes(b"not a midi file")
    (tmp_path / "chord.abc").write_text("X:1\nM:4/4\nL:1/4\nK:C\n[CEG] D E F |]\n")
    config, run_id = melody_run
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    code = main(
        ["generate", "--model", run_id, "--out", str(tmp_path / "o"), *_store(config), *extra]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_a_run_of_another_task_is_refused(melody_run, capsys):
    config, _ = melody_run
    open_store(config.tracking)
    with mlflow.start_run() as run:
        mlflow.log_text("task: instruments\nseed: 1\n", "config.yaml")
        mlflow.set_tag("model_uri", f"runs:/{run.info.run_id}/model")
    code = main(["generate", "--model", run.info.run_id, *_store(config)])
    err = capsys.readouterr().err
    assert code == 2 and "is a 'instruments' run, not a 'melody' one" in err
