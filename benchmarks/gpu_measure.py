"""What the gpu benchmark times, backend-agnostic (TensorFlow or JAX, no TensorFlow import
on JAX): the devices and versions it ran on, training steps of one network in interleaved
rounds, and raw reads of files in the feature cache's layout.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import interleaved

#: Wall seconds one timed `fit` call aims at (its step count is set from a probe).
CALL_SECONDS = 0.4
MIN_STEPS, MAX_STEPS = 4, 500
#: Distinct batches cycled through a call (random values: speed does not depend on them).
DISTINCT_BATCHES = 2


def environment() -> dict[str, Any]:
    """Backend, versions and devices, for the payload and to tell a dry run from a GPU run."""
    import keras

    env: dict[str, Any] = {"backend": keras.backend.backend(), "keras": keras.__version__}
    env |= {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count()}
    if env["backend"] == "jax":
        import jax

        devices = jax.devices()
        env |= {"jax": jax.__version__, "devices": [d.device_kind for d in devices]}
        env["accelerator"] = devices[0].platform != "cpu"
    elif env["backend"] == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        details = [tf.config.experimental.get_device_details(g).get("device_name") for g in gpus]
        env |= {"tensorflow": tf.__version__, "devices": details or ["cpu"]}
        env["accelerator"] = bool(gpus)
    else:
        from nsynth_research.core.errors import UserError

        raise UserError(f"bench gpu runs on KERAS_BACKEND tensorflow or jax, not {env['backend']}")
    env["gpu"] = _nvidia_smi()
    env["cpu"] = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    return env


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text().splitlines() if path.is_file() else []


def _nvidia_smi() -> list[dict[str, str]]:
    query = "name,driver_version,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]
    return [dict(zip(query.split(","), r, strict=False)) for r in rows]


def _optimizer(cfg: Any) -> Any:
    """The configured optimizer by Keras' own name lookup (constant learning rate: a schedule
    costs nothing measurable per step)."""
    import keras

    extra = {"weight_decay": cfg.weight_decay} if cfg.name == "adamw" else {}
    extra |= {"momentum": cfg.momentum} if cfg.name in ("sgd", "rmsprop") else {}
    spec = {"learning_rate": cfg.learning_rate, **extra}
    return keras.optimizers.get({"class_name": cfg.name, "config": spec})


def measure_group(
    config: Any,
    batch: int,
    precisions: tuple[str, ...],
    steps: int | None,
    rounds: int,
    device_data: bool,
) -> tuple[int, dict[str, Any]]:
    """(steps a call, label -> examples/s Measured) for one network at one batch size."""
    import keras

    from nsynth_research.instruments.model import build_model

    class Batches(keras.utils.PyDataset):
        def __init__(self, batches: list) -> None:
            super().__init__()
            self.batches, self.steps = batches, MIN_STEPS

        def __len__(self) -> int:
            return self.steps

        def __getitem__(self, i: int) -> tuple:
            return self.batches[i % len(self.batches)]

    rng = np.random.default_rng(0)
    shape = (batch, config.features.frames, config.features.bins, 1)
    host = [
        (rng.standard_normal(shape, dtype=np.float32), rng.integers(0, 11, batch))
        for _ in range(DISTINCT_BATCHES)
    ]
    data = {"host": Batches(host)}
    if device_data:
        to_device = keras.ops.convert_to_tensor
        data["device"] = Batches([(to_device(x), to_device(y)) for x, y in host])
    contenders, models = {}, {}
    for precision in precisions:
        model = build_model(config.model, config.features, precision)
        model.compile(
            optimizer=_optimizer(config.optimizer),
            metrics=["accuracy"],
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(data["host"], epochs=1, verbose=0)  # compiles the step
        models[precision] = model
        for kind, ds in data.items():
            contenders[f"{precision} / {kind}"] = lambda m=model, d=ds: m.fit(
                d, epochs=1, verbose=0, shuffle=False
            )
    if steps is None:  # a probe of the first (float32 host) contender sizes the calls
        start = time.perf_counter()
        next(iter(contenders.values()))()
        per_step = (time.perf_counter() - start) / MIN_STEPS
        steps = int(min(MAX_STEPS, max(MIN_STEPS, CALL_SECONDS / per_step)))
    for ds in data.values():
        ds.steps = steps
    return steps, interleaved(contenders, steps * batch, repeats=rounds)


def read_rates(config: Any, notes: int, rounds: int) -> dict[str, Any]:
    """dtype -> read -> notes/s reading `notes` files of this network's feature-cache layout
    (float32 and float16 values), from the page cache and cold (evicted from this machine's
    page cache before each timed pass; a virtual disk may still be cached by its host)."""
    frames, bins = config.features.frames, config.features.bins
    workers = os.cpu_count() or 1
    out: dict[str, Any] = {}
    for dtype in ("float32", "float16"):
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
            paths = [Path(tmp) / f"{i:06d}.f32" for i in range(notes)]
            values = np.random.default_rng(0).standard_normal((frames, bins)).astype(dtype)
            for p in paths:
                values.tofile(p)

            def evict(paths: list[Path] = paths) -> None:
                for p in paths:
                    fd = os.open(p, os.O_RDONLY)
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)

            def reader(threads: int, cold: bool, paths: list[Path] = paths, dt: str = dtype):
                def timed() -> float:
                    if cold:
                        evict()
                    start = time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(lambda f: np.fromfile(f, dt).reshape(frames, bins), paths))
                    return time.perf_counter() - start

                return timed

            got = interleaved(
                {
                    "page cache, 1 thread": reader(1, False),
                    "page cache, all cores": reader(workers, False),
                    "cold, all cores": reader(workers, True),
                },
                notes,
                repeats=rounds,
                self_timed=True,
            )
            out[dtype] = {
                k: {
                    "notes_per_second": m.as_json(),
                    "mb_per_second": m.median * values.nbytes / 1e6,
                    "bytes_per_note": values.nbytes,
                    "threads": 1 if k.endswith("1 thread") else workers,
                }
                for k, m in got.items()
            }
    return out
