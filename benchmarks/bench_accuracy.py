"""3. Accuracy on the default corpus's instrument-disjoint test split, side by side: chance,
majority class, logistic regression on librosa summary features, the seed baseline CNN
(trial 0 of the default study) and the study's champion. Bootstrap 95% intervals."""

from __future__ import annotations

from pathlib import Path

import librosa
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.common import save, table
from nsynth_research.core.runs import run_config
from nsynth_research.core.selection import baseline_trial, select_best
from nsynth_research.core.space import base_config
from nsynth_research.core.storage import RUN_ATTR, load_study
from nsynth_research.core.study_config import load_study_config
from nsynth_research.core.tracking import open_store
from nsynth_research.instruments.config import InstrumentConfig
from nsynth_research.instruments.data.audio import iter_audio
from nsynth_research.instruments.data.reader import read_split
from nsynth_research.instruments.evaluation import bootstrap_interval
from nsynth_research.instruments.task import InstrumentTask, run_stats
from nsynth_research.instruments.training import predict_split

RESAMPLES, SEED = 2000, 0


def summary_features(notes) -> np.ndarray:
    rows = []
    for _, audio in iter_audio(notes):
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=16000, n_mels=64))
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=20)
        rows.append(np.concatenate([mel.mean(1), mel.std(1), mfcc.mean(1), mfcc.std(1)]))
    return np.array(rows)


def scores(labels: np.ndarray, predictions: np.ndarray) -> list[float]:
    rng = np.random.default_rng(SEED)
    correct = (labels == predictions).astype(float)
    lo, hi = bootstrap_interval(correct, RESAMPLES, SEED)
    present = np.unique(labels)
    f1 = f1_score(labels, predictions, labels=present, average="macro", zero_division=0)
    idx = rng.integers(0, len(labels), (RESAMPLES // 4, len(labels)))
    f1s = [
        f1_score(labels[i], predictions[i], labels=present, average="macro", zero_division=0)
        for i in idx
    ]
    return [
        correct.mean(),
        lo,
        hi,
        f1,
        float(np.quantile(f1s, 0.025)),
        float(np.quantile(f1s, 0.975)),
    ]


def cnn_predictions(client, run_id: str, notes) -> np.ndarray:
    config = run_config(client, run_id, InstrumentConfig)
    model = mlflow.keras.load_model(client.get_run(run_id).data.tags["model_uri"])
    return predict_split(model, notes, run_stats(run_id), config).predictions


def run(experiment: Path = Path("experiments/default.yaml")) -> dict:
    study = load_study_config(experiment)
    base = base_config(study, InstrumentConfig)
    opt = load_study(study, base, "maximize")
    client = open_store(base.tracking)
    root = base.data.root
    train, test = read_split(root, "train"), read_split(root, "test")
    y_train = np.array([n.family for n in train])
    y_test = np.array([n.family for n in test])
    rng = np.random.default_rng(SEED)
    majority = np.bincount(y_train).argmax()
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    logreg.fit(summary_features(train), y_train)
    predictions = {
        "chance (uniform random)": rng.integers(0, 11, len(y_test)),
        "majority class (train)": np.full(len(y_test), majority),
        "logistic regression, log-mel + MFCC stats": logreg.predict(summary_features(test)),
    }
    seed = baseline_trial(opt)
    if seed is not None and seed.user_attrs.get(RUN_ATTR):
        predictions[f"seed baseline CNN (trial {seed.number})"] = cnn_predictions(
            client, seed.user_attrs[RUN_ATTR], test
        )
    best = select_best(opt, InstrumentTask.objective)
    predictions[f"study champion (trial {best.number})"] = cnn_predictions(
        client, best.user_attrs[RUN_ATTR], test
    )
    rows = [[name, *scores(y_test, p)] for name, p in predictions.items()]
    print(table(["model", "accuracy", "acc lo", "acc hi", "macro-F1", "F1 lo", "F1 hi"], rows))
    save(
        "accuracy",
        {
            "test_notes": len(y_test),
            "rows": [
                dict(
                    zip(
                        ["model", "accuracy", "acc_lo", "acc_hi", "macro_f1", "f1_lo", "f1_hi"],
                        r,
                        strict=True,
                    )
                )
                for r in rows
            ],
        },
    )
    return {r[0]: r[1] for r in rows}
