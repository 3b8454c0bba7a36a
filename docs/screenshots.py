"""Screenshots of the MLflow UI and optuna-dashboard for docs/tracking.md and the README,
taken from a real browser on a finished default study.

Not part of the package (it needs Chromium and Playwright, which the project does not):
    apt-get install -y chromium && python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    make ui PORT=5077 &              # prints the run-table URL of the study
    make dashboard PORT=8077 &       # prints optuna-dashboard's URL
    /tmp/pw/bin/python docs/screenshots.py <run-table URL> <dashboard URL> docs/

It does what a reader does: opens the printed run table, closes the Assistant panel MLflow
opens on a first visit, expands the study's parent run, adds the objective column (the
scored value of each trial) and a few searched choices, and saves `mlflow_runs.png`; opens
the champion trial (named by the evaluation run), switches the sidebar back to Model
training once (MLflow remembers it), saves `mlflow_trial.png`; then the evaluation run
(`mlflow_evaluation.png`), the registered champion version (`mlflow_model_version.png`) and
optuna-dashboard's home (`optuna_dashboard.png`). Every PNG is kept under 400 kB.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1680, "height": 900}
#: Columns toggled in the run table (as the Columns menu names them): the objective first,
#: and the Source column off to make room.
COLUMNS = [
    "val_transfer_accuracy",
    "val_accuracy",
    "search.network",
    "search.optimizer",
    "Source",
]
LIMIT = 400_000
STUDY = "study default"


def settle(page: Page, ms: int = 2500) -> None:
    """Time for the page's data to arrive (MLflow keeps polling: it is never network-idle)."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(ms)


def close_assistant(page: Page) -> None:
    """MLflow opens its Assistant panel on a browser's first visit; closing it is remembered."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()
        page.wait_for_timeout(500)


def model_training(page: Page) -> None:
    """A run page opens in GenAI mode until Model training is picked once (remembered)."""
    page.get_by_role("button", name="Model training", exact=True).first.click()
    settle(page, 1500)


def shot(page: Page, path: Path, *, full: bool = False) -> None:
    """A screenshot under LIMIT bytes: full-page ones are cut to the viewport if too big."""
    page.screenshot(path=str(path), full_page=full)
    if path.stat().st_size > LIMIT and full:
        page.screenshot(path=str(path))
    if path.stat().st_size > LIMIT:
        raise SystemExit(f"{path} is {path.stat().st_size} bytes, over {LIMIT}")


def show_columns(page: Page) -> None:
    page.get_by_role("button", name="Columns", exact=True).click()
    page.wait_for_timeout(800)
    for name in COLUMNS:
        box = page.get_by_role("dialog").get_by_text(name, exact=True)
        if not box.count():
            box = page.get_by_text(name, exact=True)
        box.first.click()
        page.wait_for_timeout(300)
    page.keyboard.press("Escape")


def open_study(page: Page, url: str) -> None:
    """The run table with the study's trials shown under its parent run (the expanded
    state is remembered between visits, so it is clicked only when collapsed)."""
    page.goto(url)
    page.wait_for_selector(f"text={STUDY}")
    settle(page)
    close_assistant(page)
    if not page.get_by_role("link", name="trial 0", exact=True).count():
        page.locator("[role=row]", has_text=STUDY).locator("button").first.click()
    page.wait_for_selector("text=trial 0")


def run_table(page: Page, url: str, out: Path) -> None:
    open_study(page, url)
    show_columns(page)
    settle(page, 1500)
    shot(page, out / "mlflow_runs.png")


def champion(page: Page) -> str:
    """The champion trial's number, as the evaluation run's name gives it."""
    evaluation = page.get_by_role("link", name=re.compile(r"^test evaluation \(trial \d+\)"))
    found = re.search(r"trial (\d+)", evaluation.first.inner_text())
    if found is None:
        raise SystemExit("no 'test evaluation (trial N)' run in the table: evaluate the study")
    return found.group(1)


def run_page(page: Page, url: str, name: str | re.Pattern, path: Path) -> None:
    open_study(page, url)
    page.get_by_role("link", name=name).first.click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}"))
    page.wait_for_selector("text=About this run")
    settle(page)
    if page.get_by_text("Training runs", exact=True).count():  # the GenAI sidebar
        run = page.url
        model_training(page)  # remembered, but it lands on the run table: back to the run
        page.goto(run)
        page.wait_for_selector("text=About this run")
        settle(page)
    close_assistant(page)
    shot(page, path, full=True)


def model_version(page: Page, url: str, out: Path) -> None:
    base = url.split("#")[0]
    page.goto(f"{base}#/models/nsynth-default/versions/1")
    settle(page, 3000)
    close_assistant(page)
    shot(page, out / "mlflow_model_version.png", full=True)


def dashboard(page: Page, url: str, out: Path) -> None:
    page.goto(url.split("/studies/")[0])
    settle(page, 3000)
    shot(page, out / "optuna_dashboard.png")


def main(url: str, dashboard_url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        run_table(page, url, out)
        number = champion(page)
        run_page(page, url, re.compile(rf"^trial {number}$"), out / "mlflow_trial.png")
        evaluation = re.compile(rf"^test evaluation \(trial {number}\)")
        run_page(page, url, evaluation, out / "mlflow_evaluation.png")
        model_version(page, url, out)
        dashboard(page, dashboard_url, out)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3] if len(sys.argv) > 3 else "docs"))
