"""Keras pieces every task's training loop shares: seeding and the optimizer from config."""

from __future__ import annotations

import keras
import tensorflow as tf

from nsynth_research.core.config import OptimizerConfig


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow; op determinism makes CPU runs bit-repeatable."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def build_optimizer(
    cfg: OptimizerConfig, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    lr: float | keras.optimizers.schedules.LearningRateSchedule = cfg.learning_rate
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps_per_epoch * epochs)
    elif cfg.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            cfg.learning_rate, steps_per_epoch, cfg.decay_rate
        )
    if cfg.name == "adadelta":
        return keras.optimizers.Adadelta(lr)
    if cfg.name == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum)
    return keras.optimizers.RMSprop(lr, momentum=cfg.momentum)
