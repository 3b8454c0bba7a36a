"""The Char-RNN itself and nothing else: events in, logits over the next event out.

One-hot input is an Embedding frozen at the identity matrix: exactly the classic one-hot
vectors, but a standard layer, so the logged model loads without custom code.
"""

from __future__ import annotations

import keras

from nsynth_research.melody.config import MelodyModelConfig


def build_model(cfg: MelodyModelConfig, vocab_size: int) -> keras.Model:
    """`layers` LSTMs of `units` with dropout after each, then softmax logits (no activation:
    the loss takes logits, which is numerically safer than probabilities)."""
    inputs = keras.Input((cfg.sequence_length,), dtype="int32", name="events")
    if cfg.input == "one_hot":
        x = keras.layers.Embedding(
            vocab_size,
            vocab_size,
            embeddings_initializer=keras.initializers.Identity(),
            trainable=False,
            name="one_hot",
        )(inputs)
    else:
        x = keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")(inputs)
    for i in range(cfg.layers):
        last = i == cfg.layers - 1
        x = keras.layers.LSTM(cfg.units, return_sequences=not last, name=f"lstm_{i + 1}")(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i + 1}")(x)
    logits = keras.layers.Dense(vocab_size, name="next_event")(x)
    return keras.Model(inputs, logits, name="melody_char_rnn")
