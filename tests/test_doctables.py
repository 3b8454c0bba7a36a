import json
from pathlib import Path

from nsynth_research.doctables import markdown, render_docs


def write_results(folder: Path) -> None:
    folder.mkdir()
    payload = {
        "date": "2026-01-02 03:04:05",
        "machine": "x86_64, 2 cores",
        "summary": {"ratio": 0.912345},
        "tables": {"train": {"headers": ["contender", "ex/s"], "rows": [["a", 612.3456]]}},
    }
    (folder / "pipeline.json").write_text(json.dumps(payload))


def test_table_and_value_markers_are_filled_from_the_results_file(tmp_path):
    results = tmp_path / "results"
    write_results(results)
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "performance.md"
    page.write_text(
        "Ratio <!-- value: pipeline/summary.ratio -->0.5<!-- /value --> here.\n\n"
        "<!-- table: pipeline/train -->\nstale text\n<!-- /table -->\nend\n"
    )
    (report,) = render_docs(docs, results)
    text = page.read_text()
    assert "Ratio <!-- value: pipeline/summary.ratio -->0.9123<!-- /value --> here." in text
    assert "| a | 612.3 |" in text
    assert "stale text" not in text
    assert "measured 2026-01-02 03:04:05 on x86_64, 2 cores" in text
    assert text.endswith("<!-- /table -->\nend\n")
    assert report.filled == 2 and report.missing == []


def test_regenerating_twice_changes_nothing(tmp_path):
    results = tmp_path / "results"
    write_results(results)
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "p.md"
    page.write_text("<!-- table: pipeline/train -->\n<!-- /table -->\n")
    render_docs(docs, results)
    once = page.read_text()
    render_docs(docs, results)
    assert page.read_text() == once


def test_a_marker_without_results_says_so_and_is_reported(tmp_path):
    results = tmp_path / "results"
    write_results(results)
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "gpu.md"
    page.write_text(
        "<!-- table: gpu/steps -->\n<!-- /table -->\n"
        "<!-- value: pipeline/summary.nothing -->1<!-- /value -->\n"
    )
    (report,) = render_docs(docs, results)
    text = page.read_text()
    assert "Not measured yet: run `make bench BENCH=gpu`" in text
    assert "(not measured)" in text
    assert report.missing == ["table gpu/steps", "value pipeline/summary.nothing"]


def test_markdown_aligns_numbers_right_and_rounds_to_four_digits():
    out = markdown(["name", "x"], [["a", 1.23456], ["b", 7]])
    assert out.splitlines() == ["| name | x |", "|---|---:|", "| a | 1.235 |", "| b | 7 |"]
