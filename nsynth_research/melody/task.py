"""The melody task as the experiment core drives it: ABC tunes from music21's corpora, the
Char-RNN, its n-gram baselines and its scoring, behind the core's `Task` interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import mlflow
from mlflow.exceptions import MlflowException

from nsynth_research.core.describe import log_dataset
from nsynth_research.core.errors import UserError
from nsynth_research.core.task import FitResult, LoggedModel, Objective, SplitReport, Task
from nsynth_research.melody.config import MelodyConfig
from nsynth_research.melody.corpus import load_corpus
from nsynth_research.melody.data import MelodyData, melody_splits
from nsynth_research.melody.evaluation import ngram_metrics, ngram_scores, split_report
from nsynth_research.melody.tokens import Vocabulary
from nsynth_research.melody.training import score_tunes, train

#: The train vocabulary saved with every run, so its model generates without the corpus.
VOCAB_ARTIFACT = "vocab.json"


def run_vocabulary(run_id: str) -> Vocabulary:
    """The vocabulary a run was trained with, from its artifacts."""
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{VOCAB_ARTIFACT}")
    except MlflowException:
        raise UserError(
            f"run {run_id} has no {VOCAB_ARTIFACT}; is it a melody training run?"
        ) from None
    return Vocabulary.from_json(text)


class MelodyTask(Task[MelodyConfig]):
    """Continue a monophonic melody one (pitch, duration) event at a time."""

    name = "melody"
    config_type = MelodyConfig
    objective = Objective("val_perplexity", "minimize", "validation perplexity")
    champion_use = "`make generate` continues melodies with it"
    epoch_metrics: ClassVar[dict[str, str]] = {
        "loss": "train_loss",
        "accuracy": "train_accuracy",
        "perplexity": "train_perplexity",
        "val_loss": "val_loss",
        "val_cross_entropy_nats": "val_cross_entropy_nats",
        "val_bits_per_event": "val_bits_per_event",
        "val_perplexity": "val_perplexity",
        "val_accuracy": "val_accuracy",
    }

    def __init__(self) -> None:
        #: Validation n-gram perplexities per data fingerprint: the same for every trial.
        self._ngram_valid: dict[str, dict[str, float]] = {}

    def ensure_data(self, config: MelodyConfig) -> None:
        """Parse and cache the corpus (once)."""
        load_corpus(config.corpus, config.tokens)

    def prepare(self, config: MelodyConfig, *, progress: bool = True) -> MelodyData:
        return melody_splits(config, progress=progress)

    def fit(
        self,
        config: MelodyConfig,
        data: MelodyData,
        *,
        callbacks: Sequence[Any] = (),
        verbose: int | str = "auto",
    ) -> FitResult:
        result = train(config, data, callbacks=callbacks, verbose=verbose)
        # The kept epoch's val_perplexity, val_loss, ... are logged by the core under their
        # plain names (`runs.scored_metrics`): one name for each figure.
        result.metrics = {k: v for k, v in result.metrics.items() if not k.startswith("best_")}
        return result

    def log_inputs(self, config: MelodyConfig, data: MelodyData) -> dict[str, str]:
        """The vocabulary, corpus counts and the validation n-gram baselines of this data."""
        mlflow.log_text(data.vocab.to_json(), VOCAB_ARTIFACT)
        # The run table's Dataset column: which tunes, by content digest, in which role.
        source = f"music21 corpus {config.corpus.name}" + (
            f" ({', '.join(config.corpus.files)})" if config.corpus.files else ""
        )
        for split, role in (("train", "training"), ("valid", "validation")):
            log_dataset(
                f"{config.corpus.name}/{split}",
                data.split_digest(split),
                role,
                len(data.splits[split]),
                source,
                unit="tunes",
            )
        if data.fingerprint not in self._ngram_valid:
            scores = ngram_scores(data.splits["train"], data.splits["valid"], data.vocab)
            self._ngram_valid[data.fingerprint] = ngram_metrics(scores, "val")
        mlflow.log_metrics(
            {
                **self._ngram_valid[data.fingerprint],
                "vocab_size": len(data.vocab),
                "n_train_events": sum(len(t.events) for t in data.splits["train"]),
                "n_valid_events": sum(len(t.events) for t in data.splits["valid"]),
                "valid_unknown_events": sum(
                    data.vocab.encode(t.events).unknown for t in data.splits["valid"]
                ),
            }
        )
        return {
            "data_fingerprint": data.fingerprint,
            "corpus_cache_key": data.corpus.key,
            "skipped_tunes": str(data.corpus.skipped),
            "n_train_tunes": str(len(data.splits["train"])),
            "n_valid_tunes": str(len(data.splits["valid"])),
            "n_test_tunes": str(len(data.splits["test"])),
        }

    def data_fingerprint(self, config: MelodyConfig) -> str:
        return melody_splits(config, progress=False).fingerprint

    def score_model(
        self, config: MelodyConfig, logged: LoggedModel, split: str, *, resamples: int
    ) -> SplitReport:
        """Perplexity of `logged` on `split`'s tunes beside the n-gram baselines, intervals
        over tunes."""
        data = melody_splits(config, progress=False)
        tunes = data.splits[split]
        net = score_tunes(logged.model, tunes, data.vocab, config.model.sequence_length)
        ngrams = ngram_scores(data.splits["train"], tunes, data.vocab)
        report = split_report(
            net,
            ngrams,
            split,
            resamples=resamples,
            seed=config.seed,
            who=logged.name,
            model_uri=logged.uri,
            label=f"on {config.corpus.name} {split} tunes",
        )
        report.tags["data_fingerprint"] = data.fingerprint
        report.tags["headline_metric"] = f"{split}_perplexity"
        return report
