"""The whole `dream` command on a tiny model: where the run lands, what it logs, the page,
the WAV levels and the failure flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf

from nsynth_research.cli import main
from nsynth_research.core.tracking import open_store

#: The channel the fixture's model has switched off (see conftest).
DEAD_CHANNEL = 0
QUICK = [
    "seeds=2",
    "families=[bass,flute,synth_lead]",
    "classes.steps=3",
    "classes.octaves=1",
    "channels.steps=3",
    "channels.octaves=1",
    "deepdream.steps=2",
    "deepdream.octaves=1",
    "channels_per_layer=2",
    "examples=2",
    "griffin_lim_iters=4",
]


@pytest.fixture(scope="module")
def dreamed(dream_model_run, tmp_path_factory: pytest.TempPathFactory):
    tracking, model_run = dream_model_run
    code = main(["dream", "--model", model_run, "--store", str(tracking.store), *QUICK])
    assert code == 0
    client = open_store(tracking)
    experiment = client.get_experiment_by_name("dreams")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], f"tags.dream_of = '{model_run}'")
    folder = tmp_path_factory.mktemp("dream-artifacts")
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(folder))
    return client, run, model_run, folder


def test_the_run_is_its_own_described_run_in_the_dreams_experiment(dreamed) -> None:
    client, run, model_run, _ = dreamed
    model_experiment = client.get_run(model_run).info.experiment_id
    assert run.info.experiment_id != model_experiment
    assert run.data.tags["dream_of"] == model_run
    note = run.data.tags["mlflow.note.content"]
    assert model_run in note and "3 families x 2 seeds" in note
    assert run.data.params["objective"] == "log_softmax"
    assert run.data.params["seeds"] == "2" and run.data.params["classes.steps"] == "3"
    assert run.data.params["layer"] == "relu1"  # resolved from the graph, not left None


def test_every_wav_is_within_full_scale_and_its_gain_is_logged(dreamed) -> None:
    _, run, _, folder = dreamed
    summary = json.loads((folder / "summary.json").read_text())
    wavs = sorted(folder.rglob("*.wav"))
    assert len(wavs) == len(summary["dreams"])
    for path in wavs:
        audio, rate = sf.read(path, dtype="float32")
        assert rate == 16_000 and audio.shape == (64_000,)
        assert np.max(np.abs(audio)) <= 1.0, path
        key = str(path.relative_to(folder).with_suffix(""))
        facts = summary["dreams"][key]
        assert facts["peak"] == pytest.approx(float(np.max(np.abs(audio))), abs=1e-6)
        # Turned down exactly when Griffin-Lim went over full scale, by the logged gain.
        assert (facts["gain_db"] < 0) == (facts["peak_raw"] > 1.0)
        if facts["gain_db"] < 0:
            assert facts["peak"] == pytest.approx(facts["peak_raw"] * 10 ** (facts["gain_db"] / 20))
    assert run.data.metrics["wav_peak_max"] <= 1.0


def test_the_dead_channel_is_flagged_in_the_run_and_on_the_page(dreamed) -> None:
    _, run, _, folder = dreamed
    summary = json.loads((folder / "summary.json").read_text())
    dead = summary["dreams"][f"channels/relu0_{DEAD_CHANNEL}"]
    assert any(f.startswith("no gradient") for f in dead["flags"]), dead["flags"]
    live = [
        v
        for k, v in summary["dreams"].items()
        if k.startswith("channels/") and not k.endswith(f"relu0_{DEAD_CHANNEL}")
    ]
    assert live and not any(f.startswith("no gradient") for v in live for f in v["flags"])
    assert run.data.metrics["flagged.channel"] >= 1
    page = (folder / "index.html").read_text()
    assert "no picture:" in cell_of(page, f"channels/relu0_{DEAD_CHANNEL}")
    assert "FAILED: no gradient" in cell_of(page, f"channels/relu0_{DEAD_CHANNEL}")
    assert "<img " in cell_of(page, "channels/relu1_3")


def cell_of(page: str, key: str) -> str:
    """The HTML of one dream's cell on the page (up to the next cell)."""
    start = page.index(f'data-key="{key}"')
    end = page.find('class="cell', start)
    return page[start : end if end > 0 else None]


def test_the_page_pairs_dreams_with_start_notes_and_real_examples(dreamed) -> None:
    _, _, _, folder = dreamed
    page = (folder / "index.html").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    assert page.count('class="pair"') == 3 * 2 + 1  # 3 families x 2 note starts, DeepDream
    starts = [k for k, v in summary["dreams"].items() if v["kind"] == "start"]
    assert len(starts) == len(set(starts)) == 3 * 2  # distinct start notes
    assert "validation notes most bass" in page
    players = len(re.findall(r"<audio ", page))
    examples = 2 * (3 + 2 * 2)  # 2 per family and per channel (2 blocks x 2 channels)
    assert players == len(summary["dreams"]) + examples
    assert "control: " in page and " of 6 distinct real start notes" in page
    for name in ("class/grid_noise.png", "class/curves_logit.png", "filters/channels.png"):
        assert (folder / name).is_file()


def test_the_dreamed_arrays_and_curves_are_logged(dreamed) -> None:
    client, run, _, folder = dreamed
    arrays = np.load(folder / "dreams.npz")
    assert "class/flute/noise_s1" in arrays.files and "channels/relu1_3" in arrays.files
    assert arrays["class/flute/noise_s1"].shape == (251, 513)
    curve = client.get_metric_history(run.info.run_id, "curve.flute.noise_s1.target_logit")
    assert [m.step for m in curve] == [1, 2, 3]
    assert Path(folder / "dream_config.yaml").is_file()


def test_make_docs_finds_every_picture_it_exports_in_the_run(dreamed, tmp_path: Path) -> None:
    from nsynth_research.docs import DREAM_FIGURES, export_dream_figures

    client, _, _, _ = dreamed
    written = export_dream_figures(client, tmp_path)
    assert sorted(p.name for p in written) == sorted(DREAM_FIGURES.values())
