"""A tiny tracked melody run end to end: logged like any task's, reproduced to the same
validation loss, scored on test tunes against n-grams, and generated from at the command
line, with one clear line and exit code 2 for each kind of bad input."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import mlflow
import music21
import pytest

from nsynth_research.cli import main
from nsynth_research.core.reproduce import reproduce
from nsynth_research.core.tracking import open_store
from nsynth_research.melody.metre import continuation, downbeat_shift, parse_key, parse_metre
from nsynth_research.melody.tokens import parse_event
from nsynth_research.tasks import task_for

pytestmark = pytest.mark.slow


def _store(config) -> list[str]:
    return ["--store", str(config.tracking.store)]


def test_run_logs_melody_metrics_vocab_and_baselines(melody_run):
    config, run_id = melody_run
    run = open_store(config.tracking).get_run(run_id)
    m = run.data.metrics
    assert run.data.tags["task"] == "melody"
    for key in ("best_epoch", "val_perplexity", "val_bits_per_event", "val_accuracy"):
        assert key in m
    assert not any(k.startswith("best_val") for k in m)  # one name for each figure
    assert all(f"val_perplexity_{n}gram" in m for n in range(1, 6))
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/vocab.json")


def test_run_logs_its_tunes_as_datasets_its_description_quotes(melody_run):
    from nsynth_research.melody.data import melody_splits

    config, run_id = melody_run
    run = open_store(config.tracking).get_run(run_id)
    data = melody_splits(config, progress=False)
    logged = {
        d.dataset.name: (d.dataset.digest, {t.key: t.value for t in d.tags})
        for d in run.inputs.dataset_inputs
    }
    assert set(logged) == {"essen/train", "essen/valid"}
    for split in ("train", "valid"):
        digest, tags = logged[f"essen/{split}"]
        assert digest == data.split_digest(split)
        assert tags["tunes"] == str(len(data.splits[split])) and tags["unit"] == "tunes"
        count = len(data.splits[split])
        assert f"essen/{split} {digest} ({count} tunes)" in run.data.tags["mlflow.note.content"]
    assert data.split_digest("train") != data.split_digest("valid")


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


def _generate(config, run_id, out, *extra) -> Path:
    """Run `generate` into `out` and return the one new run folder it made."""
    before = set(out.iterdir()) if out.exists() else set()
    code = main(["generate", "--model", run_id, "--out", str(out), *_store(config), *extra])
    assert code == 0
    (folder,) = set(out.iterdir()) - before
    return folder


def test_generate_writes_samples_greedy_and_the_real_continuation(melody_run, tmp_path):
    config, run_id = melody_run
    out = tmp_path / "gen"
    folder = _generate(config, run_id, out, "--bars", "3", "--samples", "3")
    made = json.loads((folder / "melodies.json").read_text())
    names = [m["name"] for m in made["melodies"]]
    assert names[:4] == ["sample 1", "sample 2", "sample 3", "greedy"]
    assert "real continuation" in names and sum("gram sample" in n for n in names) == 3
    bar = parse_metre(made["metre"]).bar
    pickup = Fraction(made["pickup"])
    primer_len = sum(parse_event(t).duration for t in made["primer"].split())
    for m in made["melodies"]:
        length = sum(parse_event(t).duration for t in m["events"].split())
        # every continuation completes the primer's bar and 3 more: it ends on a barline
        assert (downbeat_shift(bar, pickup) + primer_len + length) % bar == 0, m["name"]
        assert length == continuation(bar, pickup, primer_len, 3)[1], m["name"]
        assert (folder / m["file"]).stat().st_size > 0
    page = (folder / "generate.html").read_text()
    assert page.count("<audio") == 5 and page.count("piano roll of") == 5
    for name in ("sample_01.wav", "greedy.wav", "real_continuation.wav", "statistics.png"):
        assert (folder / name).stat().st_size > 0
    # the MIDI carries the tune's metre and key
    score = music21.converter.parse(str(folder / "sample_01.mid"))
    (ts,) = score.recurse().getElementsByClass(music21.meter.TimeSignature)
    (ks,) = score.recurse().getElementsByClass(music21.key.KeySignature)
    assert ts.ratioString == made["metre"]
    assert ks.sharps == parse_key(made["key"].replace(" major", "").replace(" minor", "m")).sharps
    # logged: its own run in melody-generate, the primer's notes as a param and an artifact
    client = open_store(config.tracking)
    run = client.get_run(folder.name)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "melody-generate" and experiment.tags["mlflow.note.content"]
    assert run.data.params["primer"] == (folder / "primer.txt").read_text().strip()[:500]
    assert run.data.params["samples"] == "3" and run.data.params["metre"] == made["metre"]
    assert "validation tunes" in run.data.tags["mlflow.note.content"]
    assert "lstm_sample.tv_degree" in run.data.metrics
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "generated")}
    assert "generated/generate.html" in logged and "generated/primer.txt" in logged


def test_a_second_run_never_overwrites_the_first(melody_run, tmp_path):
    config, run_id = melody_run
    out = tmp_path / "gen"
    primer = " | ".join(_known_events(run_id, 2))  # a pickup, then a bar
    first = _generate(config, run_id, out, "--bars", "1", "--samples", "1", "--primer", primer)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    second = _generate(
        config,
        run_id,
        out,
        "--bars",
        "1",
        "--samples",
        "1",
        "--primer",
        primer,
        "--meter",
        "3/4",
        "--key",
        "Bb",
    )
    assert second != first
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    score = music21.converter.parse(str(second / "greedy.mid"))
    (ts,) = score.recurse().getElementsByClass(music21.meter.TimeSignature)
    (ks,) = score.recurse().getElementsByClass(music21.key.KeySignature)
    assert (ts.ratioString, ks.sharps) == ("3/4", -2)
    assert not (second / "real_continuation.mid").exists()  # a typed primer has none


def _known_events(run_id: str, n: int) -> list[str]:
    """The n most common events of the run's vocabulary that are notes."""
    from nsynth_research.melody.task import run_vocabulary

    return [t for t in run_vocabulary(run_id).tokens[2:] if not t.startswith("R/")][:n]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--bars", "0"], "BARS=0"),
        (["--primer", "C4/1 Q9/1"], "is not a pitch"),
        (["--primer", "C1/7/13"], "not in the model's vocabulary"),
        (["--primer", "{tmp}/broken.mid"], "could not be read"),
        (["--primer", "{tmp}/chord.abc"], "chord"),
        (["--primer", "{tmp}/missing.abc"], "not found"),
        (["--meter", "3"], "METER="),
        (["--key", "H"], "KEY="),
        (["--top-p", "0"], "TOP_P="),
        (["--top-k", "-1"], "TOP_K="),
        (["--samples", "0"], "SAMPLES="),
        (["--repeat-guard", "1"], "REPEAT_GUARD="),
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
