"""3. The accuracy ladder: chance, majority class, logistic regression on librosa summary
features, the seed baseline CNN (trial 0 of the default study) and the study's champion.

It never reads the study's test split: that is read once, by `make evaluate`, and a benchmark
re-reading it would make the test set one more thing looked at. The ladder is scored on the
validation split (the study selected on it, so the CNN rows are optimistic there, and say
so), and the champion's test figure is the one its logged evaluation recorded. Intervals are
bootstrap 95% intervals over instruments (the honest one) beside the older over-notes one.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.common import EXPERIMENT, save, table
from nsynth_research.core.runs import run_config
from nsynth_research.core.selection import baseline_trial, previous_evaluation, select_best
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import RUN_ATTR, load_study
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.audio import iter_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.evaluation import cluster_bootstrap, macro_f1
from nsynth_research.instruments.task import InstrumentTask, run_stats
from nsynth_research.instruments.training import predict_split

RESAMPLES, SEED = 2000, 0
#: The split the ladder is scored on: never "test".
SPLIT = "valid"
HEADERS = [
    "model", "accuracy", "instrument CI", "note CI", "macro-F1", "instrument CI", "note CI",
]  # fmt: skip


def summary_features(notes) -> np.ndarray:
    rows = []
    for _, audio in iter_audio(notes):
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=16000, n_mels=64))
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=20)
        rows.append(np.concatenate([mel.mean(1), mel.std(1), mfcc.mean(1), mfcc.std(1)]))
    return np.array(rows)


def scores(labels: np.ndarray, predictions: np.ndarray, instruments: list[str]) -> dict:
    """Accuracy and macro-F1 with instrument-level and note-level intervals."""
    by_inst = cluster_bootstrap(labels, predictions, instruments, resamples=RESAMPLES, seed=SEED)
    by_note = cluster_bootstrap(
        labels, predictions, np.arange(len(labels)), resamples=RESAMPLES, seed=SEED
    )
    return {
        "accuracy": float((labels == predictions).mean()),
        "accuracy_instrument_ci": by_inst.accuracy,
        "accuracy_note_ci": by_note.accuracy,
        "macro_f1": macro_f1(labels, predictions),
        "macro_f1_instrument_ci": by_inst.macro_f1,
        "macro_f1_note_ci": by_note.macro_f1,
    }


def cnn_predictions(client, run_id: str, notes) -> np.ndarray:
    config = run_config(client, run_id, InstrumentConfig)
    model = mlflow.keras.load_model(client.get_run(run_id).data.tags["model_uri"])
    return predict_split(model, notes, run_stats(run_id), config).predictions


def span(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def run(experiment: Path = EXPERIMENT) -> dict:
    study = load_study_config(experiment)
    base = base_config(study, InstrumentConfig)
    opt = load_study(study, base, "maximize")
    client = open_store(base.tracking)
    root = base.data.root
    train, notes = read_split(root, "train"), read_split(root, SPLIT)
    y_train = np.array([n.family for n in train])
    labels = np.array([n.family for n in notes])
    instruments = [n.instrument_str for n in notes]
    rng = np.random.default_rng(SEED)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    logreg.fit(summary_features(train), y_train)
    predictions = {
        "chance (uniform random)": rng.integers(0, 11, len(labels)),
        "majority class (train)": np.full(len(labels), np.bincount(y_train).argmax()),
        "logistic regression, log-mel + MFCC stats": logreg.predict(summary_features(notes)),
    }
    seed = baseline_trial(opt)
    if seed is not None and seed.user_attrs.get(RUN_ATTR):
        predictions[f"seed baseline CNN (trial {seed.number}, selected on {SPLIT})"] = (
            cnn_predictions(client, seed.user_attrs[RUN_ATTR], notes)
        )
    best = select_best(opt, InstrumentTask.objective)
    predictions[f"study champion (trial {best.number}, selected on {SPLIT})"] = cnn_predictions(
        client, best.user_attrs[RUN_ATTR], notes
    )
    rows = {name: scores(labels, p, instruments) for name, p in predictions.items()}
    printed = [
        [name, r["accuracy"], span(r["accuracy_instrument_ci"]), span(r["accuracy_note_ci"]),
         r["macro_f1"], span(r["macro_f1_instrument_ci"]), span(r["macro_f1_note_ci"])]
        for name, r in rows.items()
    ]  # fmt: skip
    print(f"{SPLIT} split: {len(labels)} notes of {len(set(instruments))} instruments")
    print(table(HEADERS, printed))
    evaluation = previous_evaluation(InstrumentTask(), study)
    if evaluation is not None and evaluation.state == "FINISHED":
        test = evaluation.metrics
        print(
            f"champion on test (its logged evaluation, run {evaluation.run_id}, not re-read): "
            f"accuracy {test['test_accuracy']:.3f}, over instruments "
            f"[{test['test_accuracy_ci_low']:.3f}, {test['test_accuracy_ci_high']:.3f}]"
        )
    else:
        print("no finished test evaluation logged for the study: `make evaluate` reads it once")
    save(
        "accuracy",
        {
            "split": SPLIT,
            "notes": len(labels),
            "instruments": len(set(instruments)),
            "rows": [{"model": name, **r} for name, r in rows.items()],
            "test_evaluation": (
                {"run_id": evaluation.run_id, "metrics": evaluation.metrics}
                if evaluation is not None
                else None
            ),
        },
        tables={"validation": (HEADERS, printed)},
    )
    return {name: r["accuracy"] for name, r in rows.items()}
