"""Predict the family of any audio file with the study's champion or a logged run's model.

Any common audio file is accepted and made NSynth-shaped: resampled to 16 kHz (librosa),
down-mixed to mono, then zero-padded or trimmed to 4 s from its start (NSynth notes start at
the onset), so a 2.5 s stereo 44.1 kHz file is scored like an NSynth note.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import librosa
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.exceptions import MlflowException

from nsynth_research.core.errors import UserError
from nsynth_research.core.runs import run_config
from nsynth_research.core.tracking import get_run, open_store
from nsynth_research.instruments.config import NUM_SAMPLES, SAMPLE_RATE, InstrumentConfig
from nsynth_research.instruments.families import FAMILIES
from nsynth_research.instruments.features.spectrogram import tf_features
from nsynth_research.instruments.features.stats import FeatureStats
from nsynth_research.instruments.task import run_stats

TrackingClient = mlflow.MlflowClient


@dataclass(frozen=True)
class Predictor:
    """A trained model with the exact features and statistics it was trained on."""

    model: keras.Model
    config: InstrumentConfig
    stats: FeatureStats
    source: str

    def top(self, audio: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        feats = tf_features(tf.constant(audio[None, :], tf.float32), self.config.features)
        x = self.stats.normaliser(self.config.features.norm_eps)(feats)
        logits = self.model(x[..., None], training=False)
        probs = tf.nn.softmax(tf.cast(logits, tf.float32))[0].numpy()
        order = np.argsort(probs)[::-1][:k]
        return [(FAMILIES[i], float(probs[i])) for i in order]


def load_audio_any(path: Path) -> np.ndarray:
    """Any readable audio file -> float32 mono 16 kHz, exactly 4 s."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file not found: {path}")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the outcome is reported below.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            audio, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    except Exception as exc:  # soundfile and audioread raise many unrelated types
        raise UserError(
            f"{path} could not be decoded as audio ({type(exc).__name__}: {exc}); "
            "pass a WAV, FLAC, OGG or MP3 file"
        ) from None
    if audio.size == 0:
        raise UserError(f"{path} holds no audio samples")
    audio = audio[:NUM_SAMPLES]
    return np.pad(audio, (0, NUM_SAMPLES - audio.size)).astype(np.float32)


def resolve_run(client: TrackingClient, model: str) -> str:
    """Run id behind a run id, `runs:/<id>/...` or a registered `models:/<name>@<alias>`."""
    if model.startswith("runs:/"):
        return model.removeprefix("runs:/").split("/", 1)[0]
    if model.startswith("models:/"):
        name, _, ref = model.removeprefix("models:/").partition("@")
        try:
            if ref:
                version = client.get_model_version_by_alias(name, ref)
            else:
                name, _, number = name.partition("/")
                version = client.get_model_version(name, number)
        except MlflowException:
            raise UserError(
                f"no registered model {model} in {client.tracking_uri}: run `make sweep` (it "
                "registers the champion) or pass MODEL=<run id>"
            ) from None
        if version.run_id is None:  # the project registers models only from runs
            raise UserError(f"registered model {model} names no run; pass MODEL=<run id>")
        return version.run_id
    return get_run(client, model).info.run_id


def load_predictor(model: str, config: InstrumentConfig) -> Predictor:
    client = open_store(config.tracking)
    run_id = resolve_run(client, model)
    model_uri = get_run(client, run_id).data.tags.get("model_uri")
    if not model_uri:
        raise UserError(f"run {run_id} logged no model (tracking.log_model was false)")
    return Predictor(
        model=mlflow.keras.load_model(model_uri),
        config=run_config(client, run_id, InstrumentConfig),
        stats=run_stats(run_id),
        source=f"run {run_id}",
    )
