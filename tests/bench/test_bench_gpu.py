"""The gpu benchmark's CPU dry run: it measures every requested contender and writes JSON that
says what it ran on, without touching the accelerator figures in `gpu.json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_gpu, common

pytestmark = pytest.mark.slow


def test_dry_run_writes_every_contender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    # The working copy's store may hold a champion of its own (after `make sweep`); this test
    # asserts the recorded champion point, which is what a store without one resolves to.
    monkeypatch.setattr(bench_gpu, "_store_champion", lambda name, base: None)
    small = ["--batches", "2", "--precisions", "float32,mixed_bfloat16", "--steps", "1"]
    bench_gpu.run([*small, "--input-notes", "3"])

    assert not (tmp_path / "gpu.json").exists()
    payload = json.loads((tmp_path / "gpu-dryrun.json").read_text())
    assert payload["dry_run"] is True and payload["complete"] is True
    env = payload["environment"]
    assert env["backend"] == "tensorflow" and env["keras"] and env["tensorflow"]
    assert payload["machine"].startswith("cpu")

    champion = payload["networks"]["champion"]["config"]
    assert champion["features"]["kind"] == "logmel" and champion["features"]["n_mels"] == 64
    seed = payload["networks"]["seed"]["config"]
    assert seed["model"]["first_kernel"] == [3, 513] and seed["features"]["kind"] == "stft"

    results = payload["results"]
    got = {(r["network"], r["batch"], r["precision"], r["data"]) for r in results}
    assert got == {
        (net, 2, p, "host") for net in ("champion", "seed") for p in ("float32", "mixed_bfloat16")
    }
    for r in results:
        rate = r["steps_per_second"]
        assert 0 < rate["low"] <= rate["median"] <= rate["high"]
        assert r["examples_per_second"] == pytest.approx(rate["median"] * 2)
        assert len(r["examples_per_second_samples"]) == bench_gpu.ROUNDS

    reads = payload["input_reads"]["seed"]
    assert reads["float32"]["cold, all cores"]["bytes_per_note"] == 251 * 513 * 4
    assert reads["float16"]["page cache, 1 thread"]["notes_per_second"]["median"] > 0

    tables = payload["tables"]
    assert len(tables["steps"]["rows"]) == len(results)
    assert [row[0] for row in tables["full_nsynth"]["rows"]] == ["champion", "seed"]
    assert any("tf.data" in line for line in payload["not_measured"])


def test_networks_are_read_back_from_a_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the accelerator run does without TensorFlow: measure the networks an earlier run
    resolved, and refuse a missing file with a one-line error."""
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    networks = bench_gpu.resolve_networks()
    source = tmp_path / "earlier.json"
    source.write_text(json.dumps({"networks": {"seed": networks["seed"]}}))
    bench_gpu.run(
        [
            "--networks-from",
            str(source),
            "--batches",
            "2",
            "--precisions",
            "float32",
            "--steps",
            "1",
            "--input-notes",
            "2",
        ]
    )
    payload = json.loads((tmp_path / "gpu-dryrun.json").read_text())
    assert list(payload["networks"]) == ["seed"] and payload["networks_from"] == str(source)
    assert {r["network"] for r in payload["results"]} == {"seed"}

    from nsynth_research.core.errors import UserError

    with pytest.raises(UserError, match="no such results file"):
        bench_gpu.run(["--networks-from", str(tmp_path / "missing.json")])
