"""Memory a run will need, checked against what the machine has before TensorFlow allocates.

An absurd setting (features.n_fft=100000 makes every STFT frame 100,000 samples and the
network's input 50,001 bins tall) would otherwise end in TensorFlow's ResourceExhausted error
after minutes, with a traceback naming no config key. The estimate is deliberately rough (the
two largest allocations, not a profile): it refuses only settings that cannot fit, naming the
key to change and how much memory they would take.
"""

from __future__ import annotations

import math

import psutil

from nsynth_research.core.errors import ConfigError
from nsynth_research.instruments.config import InstrumentConfig

#: Notes per batched STFT when features are computed (`features.cache.ensure_cached`).
FEATURE_BATCH = 32
#: Copies of a batch's activations alive while training (forward values kept for the
#: backward pass, and the gradients flowing back through them).
TRAINING_COPIES = 2
#: Per weight: the weight, its gradient and up to two optimizer slots (Adam), float32.
BYTES_PER_WEIGHT = 4 * 4


def feature_bytes(config: InstrumentConfig) -> int:
    """The batched STFT: every frame windowed (real) and transformed (complex)."""
    f = config.features
    real = 8 if f.fft_precision == "float64" else 4
    notes = max(FEATURE_BATCH, config.training.batch_size)
    return notes * f.frames * f.n_fft * real * 3  # real frames + complex spectrum


def training_bytes(config: InstrumentConfig) -> int:
    """The network on one training batch: weights with optimizer state, and activations."""
    f = config.features
    plan = config.model.plan(f.frames, f.bins)
    shapes = [plan.input, *(layer.shape for layer in plan.layers)]
    activations = sum(math.prod(shape) for shape in shapes) * 4
    weights = 0
    previous = plan.input
    for layer in plan.layers:
        if layer.kind == "conv":
            kernel = layer.args["kernel_size"]
            weights += kernel[0] * kernel[1] * previous[-1] * layer.shape[-1]
        elif layer.kind == "dense":
            weights += math.prod(previous) * layer.shape[-1]
        previous = layer.shape
    return weights * BYTES_PER_WEIGHT + activations * config.training.batch_size * TRAINING_COPIES


def check_memory(config: InstrumentConfig) -> None:
    """Refuse, naming the setting, a run whose features or network cannot fit in memory."""
    available = psutil.virtual_memory().available
    f, batch = config.features, config.training.batch_size
    for what, need, fix in (
        (
            f"computing spectra of features.n_fft {f.n_fft} samples",
            feature_bytes(config),
            "lower features.n_fft (the seed uses 1024)",
        ),
        (
            f"training on {f.frames} x {f.bins} inputs in batches of {batch}",
            training_bytes(config),
            "lower features.n_fft or features.n_mels, training.batch_size, or the model's size",
        ),
    ):
        if need > available:
            raise ConfigError(
                f"{what} needs about {need / 2**30:.1f} GiB of memory, but this machine has "
                f"{available / 2**30:.1f} GiB available; {fix}"
            )
