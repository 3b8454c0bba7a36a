"""Measured tables and figures in docs/ pages, regenerated from `benchmarks/results/*.json`.

A page marks where a benchmark's table goes, and `make docs` fills it in from the results file
the benchmark wrote, so no measured number in docs/ is ever typed by hand or left stale:

    <!-- table: pipeline/train -->
    (replaced by the table "train" of benchmarks/results/pipeline.json)
    <!-- /table -->

and, inside prose, one value: `<!-- value: pipeline/summary.ratio -->0.93<!-- /value -->`
(a dotted path into the same JSON). `<!-- config: instruments -->` ... `<!-- /config -->`
holds the reference of a config schema, generated from the schema (`config_reference`).
A marker naming a file, table or value that does not exist is rendered as a visible "not
measured" note and reported, never left silently empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nsynth_research.config_reference import reference

TABLE = re.compile(
    r"(?P<open><!-- table: (?P<bench>[\w-]+)/(?P<id>[\w.-]+) -->\n)"
    r"(?P<body>.*?)(?P<close><!-- /table -->)",
    re.DOTALL,
)
CONFIG = re.compile(
    r"(?P<open><!-- config: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /config -->)",
    re.DOTALL,
)
VALUE = re.compile(
    r"(?P<open><!-- value: (?P<bench>[\w-]+)/(?P<path>[\w.-]+) -->)"
    r"(?P<body>.*?)(?P<close><!-- /value -->)",
    re.DOTALL,
)


def cell(value: Any) -> str:
    """How every measured number is shown: four significant digits, other values as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: first column left-aligned (names), the others right (numbers)."""
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


@dataclass
class Rendered:
    """What one page's regeneration did: markers filled and markers with nothing to fill."""

    path: Path
    filled: int = 0
    missing: list[str] = field(default_factory=list)


class Results:
    """`benchmarks/results/<bench>.json` files, read once each."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._loaded: dict[str, dict[str, Any] | None] = {}

    def get(self, bench: str) -> dict[str, Any] | None:
        if bench not in self._loaded:
            path = self.folder / f"{bench}.json"
            self._loaded[bench] = json.loads(path.read_text()) if path.is_file() else None
        return self._loaded[bench]


def source_line(bench: str, payload: dict[str, Any]) -> str:
    return (
        f"<sub>From `benchmarks/results/{bench}.json` (`make bench BENCH={bench}`), measured "
        f"{payload.get('date', '?')} on {payload.get('machine', '?')}.</sub>"
    )


def lookup(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def render_page(
    text: str,
    results: Results,
    report: Rendered,
    schemas: dict[str, type[BaseModel]] | None = None,
) -> str:
    """The page with every table, value and config marker refilled from the results files
    and the config `schemas` (marker name -> schema)."""

    def table(match: re.Match[str]) -> str:
        bench, key = match["bench"], match["id"]
        payload = results.get(bench)
        found = (payload or {}).get("tables", {}).get(key)
        if payload is None or found is None:
            report.missing.append(f"table {bench}/{key}")
            body = f"*Not measured yet: run `make bench BENCH={bench}`, then `make docs`.*\n"
        else:
            report.filled += 1
            body = f"{markdown(found['headers'], found['rows'])}\n\n{source_line(bench, payload)}\n"
        return f"{match['open']}{body}{match['close']}"

    def value(match: re.Match[str]) -> str:
        bench, path = match["bench"], match["path"]
        payload = results.get(bench)
        try:
            shown = cell(lookup(payload or {}, path))
            report.filled += 1
        except KeyError:
            report.missing.append(f"value {bench}/{path}")
            shown = "(not measured)"
        return f"{match['open']}{shown}{match['close']}"

    def config(match: re.Match[str]) -> str:
        schema = (schemas or {}).get(match["name"])
        if schema is None:
            report.missing.append(f"config {match['name']}")
            return match[0]
        report.filled += 1
        return f"{match['open']}{reference(schema)}\n{match['close']}"

    return CONFIG.sub(config, VALUE.sub(value, TABLE.sub(table, text)))


def render_docs(
    docs: Path, results_dir: Path, schemas: dict[str, type[BaseModel]] | None = None
) -> list[Rendered]:
    """Refill every marked page under `docs` (and README.md beside it, if marked)."""
    results = Results(results_dir)
    pages = sorted(Path(docs).rglob("*.md"))
    readme = Path(docs).resolve().parent / "README.md"
    if readme.is_file():
        pages.append(readme)
    done = []
    for page in pages:
        text = page.read_text()
        if not any(f"<!-- {kind}:" in text for kind in ("table", "value", "config")):
            continue
        report = Rendered(page)
        new = render_page(text, results, report, schemas)
        if new != text:
            page.write_text(new)
        done.append(report)
    return done
