"""Predicting any audio file: NSynth-shaping of odd files, clear errors, top-3 output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nsynth_research.cli import main
from nsynth_research.core.errors import UserError
from nsynth_research.instruments.config import NUM_SAMPLES, InstrumentConfig
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.predict import load_audio_any, load_predictor


def stereo_file(tmp_path: Path) -> Path:
    t = np.arange(int(44100 * 2.5)) / 44100
    left = 0.4 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100)
    return path


def test_a_stereo_44k_short_file_becomes_an_nsynth_note(tmp_path: Path) -> None:
    audio = load_audio_any(stereo_file(tmp_path))
    assert audio.shape == (NUM_SAMPLES,) and audio.dtype == np.float32
    assert np.abs(audio[: 16000 * 2]).max() > 0.2  # the tone, down-mixed
    assert not audio[int(16000 * 2.6) :].any()  # zero padding after 2.5 s


def test_garbage_bytes_are_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "notes.wav"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(UserError, match=r"notes\.wav could not be decoded as audio"):
        load_audio_any(junk)
    with pytest.raises(UserError, match="audio file not found"):
        load_audio_any(tmp_path / "missing.wav")


def test_predict_prints_the_top_three(tiny_run, tmp_path: Path, capsys) -> None:
    config, run_id = tiny_run
    predictor = load_predictor(run_id, InstrumentConfig(tracking=config.tracking))
    top = predictor.top(load_audio_any(stereo_file(tmp_path)))
    assert len(top) == 3 and all(family in FAMILIES for family, _ in top)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    code = main(
        [
            "predict",
            str(stereo_file(tmp_path)),
            "--model",
            run_id,
            "--store",
            str(config.tracking.store),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and f"1. {top[0][0]}" in out


def test_unknown_model_is_a_clear_error(tiny_run, tmp_path: Path, capsys) -> None:
    config, _ = tiny_run
    args = ["predict", str(stereo_file(tmp_path)), "--store", str(config.tracking.store)]
    assert main([*args, "--model", "0123456789abcdef"]) == 2
    assert "no run '0123456789abcdef'" in capsys.readouterr().err
    assert main([*args, "--model", "models:/nsynth-nothing@champion"]) == 2
    assert "no registered model" in capsys.readouterr().err
