"""The pipeline benchmark's contenders, targets and report: tables, verdicts and the
results file (`bench_pipeline` measures, this says what the measurements show)."""

from __future__ import annotations

import statistics

from benchmarks.common import Measured, markdown, ratio_rows, save, table
from benchmarks.pipeline_loaders import COLD_ADVISED, COLD_FAULTED
from benchmarks.pipeline_probe import Probe, clusters, median_of

NOTES, BATCH, REPEATS, LOADED_REPEATS, EPOCHS = 384, 32, 10, 6, 3
#: An epoch slower than this share of the ceiling's median epoch counts as a slow one.
SLOW = 0.75
CEILING = "ceiling (in-memory tensors)"
AUTOTUNED = "ceiling, tf.data autotuning on"
BOUND = "bound (finished batches in memory)"
PIPE = "project pipeline (feature cache, default)"
PER_NOTE = "per-note cache files (parallel tf.data reads)"
COMPUTING = "project pipeline (features each epoch)"
SEED = "seed-style (np.load per note)"
#: Short names of the contenders in the results' summary (docs quote values by these).
KEYS = {CEILING: "ceiling", AUTOTUNED: "autotuned", BOUND: "bound", PIPE: "pipeline"}
KEYS |= {PER_NOTE: "per_note", COMPUTING: "computing", SEED: "seed_style"}
#: The contenders meant to train at the ceiling's speed: their slow epochs are counted (the
#: others are slower by design, every epoch of them below the mark).
AT_CEILING = (CEILING, AUTOTUNED, BOUND, PIPE)


def report(results, epochs, alone, cold, loaded, maps, probe, beside, machine, notes: int) -> dict:
    before, after = machine
    headers, rows = ratio_rows(results, CEILING, "train ex/s")
    headers += ["rounds", "epochs", f"epochs < {SLOW:.0%} of the ceiling's"]
    floor = SLOW * statistics.median(epochs[CEILING])
    for row in rows:
        rates = epochs[row[0]]
        row += [clusters(results[row[0]].samples), clusters(rates)]
        slow = sum(r < floor for r in rates)
        row.append(f"{slow} of {len(rates)}" if row[0] in AT_CEILING else "-")
    r_headers = ["round", "ceiling ex/s", "pipeline ex/s", "pipeline / ceiling"]
    r_headers += ["bound ex/s", "pipeline / bound", "autotuned ceiling ex/s"]
    r_headers += ["autotuned cores busy (CPU s / wall s)", "per-note ex/s"]
    r_headers += ["per-note page faults", "seed-style ex/s", "load (1 min)", "others' cores"]
    r_rows = []
    for r in range(REPEATS):
        calls = [probe.timed(name)[r] for name in results]
        pipe = results[PIPE].samples[r]
        row = [r + 1, results[CEILING].samples[r], pipe, pipe / results[CEILING].samples[r]]
        row += [results[BOUND].samples[r], pipe / results[BOUND].samples[r]]
        tuned = probe.timed(AUTOTUNED)[r]
        row += [results[AUTOTUNED].samples[r], (tuned.user + tuned.system) / tuned.wall]
        row += [results[PER_NOTE].samples[r], probe.timed(PER_NOTE)[r].faults / EPOCHS]
        row += [results[SEED].samples[r]]
        row += [max(c.load1 for c in calls), max(c.others_cores for c in calls)]
        r_rows.append(row)
    d_headers = ["contender", "CPU s / epoch", "of which system", "page faults / epoch"]
    d_headers += ["peak threads", "disk MB read / epoch"]
    costs = {name: _costs(probe, name) for name in results}
    columns = ("cpu_seconds", "system_seconds", "faults_median", "peak_threads", "disk_mb_max")
    d_rows = [[name, *(c[k] for k in columns)] for name, c in costs.items()]
    m_headers = ["contender", "mmap calls / epoch", "munmap calls / epoch", "MB unmapped / epoch"]
    m_rows = [
        [n, c["mmap"], c["munmap"], c["unmapped_mb"]] if c else [n, "-", "-", "-"]
        for n, c in maps.items()
    ]
    a_headers, a_rows = ratio_rows(alone, SEED, "loader-only ex/s")
    c_headers, c_rows = ratio_rows(cold, COLD_FAULTED, "cold notes/s")
    c_headers.append("disk MB read / epoch")
    for row in c_rows:
        row.append(median_of(probe.timed(row[0]), "disk_mb"))
    l_headers = ["contender", "quiet median ex/s", "beside a study median ex/s", "range"]
    l_headers += ["beside / quiet", "other processes' cores"]
    l_rows = []
    for name, m in loaded.items():
        base = results[name].median
        others = median_of(beside.timed(name), "others_cores")
        l_rows.append([name, base, m.median, m.spread(), m.median / base, others])
    tables = {  # id in the results file: (title printed, headers, rows)
        "train": ("Training one epoch", headers, rows),
        "rounds": ("Every round", r_headers, r_rows),
        "costs": ("What an epoch costs the process (medians)", d_headers, d_rows),
        "loaders": ("Loaders alone", a_headers, a_rows),
        "maps": ("Memory mappings a loader-only epoch makes (strace)", m_headers, m_rows),
        "cold": ("Gathers from rows not in the page cache", c_headers, c_rows),
        "beside": ("Beside a study's trial", l_headers, l_rows),
    }
    for title, h, r in tables.values():
        print(f"\n{title}:\n{table(h, r)}\n\n{markdown(h, r)}")
    verdict = verdicts(results, loaded)
    verdict["epochs"] = {KEYS[name]: clusters(rates) for name, rates in epochs.items()}
    verdict["slow_epochs"] = {KEYS[n]: sum(r < floor for r in epochs[n]) for n in AT_CEILING}
    verdict["epochs_timed"] = len(epochs[CEILING])
    verdict["costs"] = {KEYS[name]: c for name, c in costs.items()}
    verdict["others_cores_max"] = max(row[-1] for row in r_rows)
    verdict["maps"] = {KEYS[name]: counts for name, counts in maps.items()}
    verdict["cold_advised_vs_faulted"] = cold[COLD_ADVISED].median / cold[COLD_FAULTED].median
    quiet = verdict["others_cores_max"]
    print(
        f"\nload average after: {after['load1']:.2f} {after['load5']:.2f}; other processes "
        f"used up to {quiet:.2f} cores during the quiet rounds"
        + (" (the machine was NOT quiet: read the ranges as noise)" if quiet > 0.25 else "")
    )
    print(
        f"targets: every round >= 0.90 of the ceiling -> worst pipeline round "
        f"{verdict['pipeline_min_vs_ceiling_median']:.2f} of the ceiling's median (worst "
        f"same-round ratio {verdict['worst_round_ratio']:.2f}; median "
        f"{verdict['pipeline_vs_ceiling']:.2f}; against finished batches, median "
        f"{verdict['pipeline_vs_bound']:.2f}, worst round "
        f"{verdict['worst_round_ratio_to_bound']:.2f}); ahead of seed-style beyond "
        f"noise -> {verdict['pipeline_ahead_of_seed_style_beyond_noise']}; beside a study "
        f"the pipeline keeps {verdict['pipeline_beside_study']:.2f} of its speed, the "
        f"ceiling {verdict['ceiling_beside_study']:.2f}"
    )
    save(
        "pipeline",
        {
            "notes": notes,
            "batch": BATCH,
            "repeats": REPEATS,
            "epochs_per_round": EPOCHS,
            "machine_before": before,
            "machine_after": after,
            "examples_per_second": {k: m.as_json() for k, m in results.items()},
            "epoch_examples_per_second": epochs,
            "loader_only_examples_per_second": {k: m.as_json() for k, m in alone.items()},
            "cold_notes_per_second": {k: m.as_json() for k, m in cold.items()},
            "beside_a_study_examples_per_second": {k: m.as_json() for k, m in loaded.items()},
            "calls": probe.as_json(),
            "calls_beside_a_study": beside.as_json(),
            "summary": verdict,
        },
        tables={key: (h, r) for key, (_, h, r) in tables.items()},
    )
    return verdict


def verdicts(results: dict[str, Measured], loaded: dict[str, Measured]) -> dict:
    pipe, ceiling, seed = results[PIPE], results[CEILING], results[SEED]
    bound = results[BOUND]
    return {
        "pipeline_vs_ceiling": pipe.median / ceiling.median,
        "pipeline_min_vs_ceiling_median": pipe.low / ceiling.median,
        "worst_round_ratio": _worst(pipe, ceiling),
        "ceiling_vs_bound": ceiling.median / bound.median,
        "pipeline_vs_bound": pipe.median / bound.median,
        "worst_round_ratio_to_bound": _worst(pipe, bound),
        "autotuned_vs_ceiling": results[AUTOTUNED].median / ceiling.median,
        "autotuned_min_vs_ceiling_median": results[AUTOTUNED].low / ceiling.median,
        "pipeline_vs_seed_style": pipe.median / seed.median,
        "pipeline_ahead_of_seed_style_beyond_noise": pipe.low > seed.high,
        "per_note_files_vs_ceiling": results[PER_NOTE].median / ceiling.median,
        "pipeline_beside_study": loaded[PIPE].median / pipe.median,
        "ceiling_beside_study": loaded[CEILING].median / ceiling.median,
        "rounds": {KEYS[name]: clusters(m.samples) for name, m in results.items()},
    }


def _costs(probe: Probe, name: str) -> dict[str, float]:
    """What an epoch of `name` cost the process: medians over the rounds (each `EPOCHS`
    epochs long), the largest round for threads and disk reads."""
    calls = probe.timed(name)
    system = median_of(calls, "system") / EPOCHS
    return {
        "cpu_seconds": median_of(calls, "user") / EPOCHS + system,
        "system_seconds": system,
        "faults_median": median_of(calls, "faults") / EPOCHS,
        "faults_max": max(c.faults for c in calls) / EPOCHS,
        "peak_threads": max(c.peak_threads for c in calls),
        "disk_mb_max": max(c.disk_mb for c in calls) / EPOCHS,
    }


def _worst(contender: Measured, reference: Measured) -> float:
    """The lowest same-round ratio: each round's contender against that round's reference."""
    return min(c / r for c, r in zip(contender.samples, reference.samples, strict=True))
