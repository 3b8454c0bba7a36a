"""Screenshots of the MLflow UI for the README, taken from a real browser.

Not part of the package (it needs Chromium and Playwright, which the project does not):
    apt-get install -y chromium && python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    make ui PORT=5077 &            # prints the run-table URL of the study
    /tmp/pw/bin/python docs/screenshots.py <that URL> docs/

It opens the run table in Model-training mode, closes the assistant panel, expands the
study's parent run, shows the searched choices and the validation accuracy as columns,
saves `mlflow_runs.png`, then opens the champion trial (named by the evaluation run) and
saves `mlflow_trial.png`.
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
#: Columns shown in the run table screenshot (as the UI names them).
COLUMNS = ["val_accuracy", "search.first_conv", "search.optimizer", "search.model.dropout"]


def show_columns(page: Page) -> None:
    page.get_by_role("button", name="Columns", exact=True).click()
    for name in COLUMNS:
        box = page.get_by_role("dialog").get_by_text(name, exact=True)
        if box.count():
            box.first.click()
    page.keyboard.press("Escape")


def run_table(page: Page, url: str, out: Path) -> None:
    page.goto(url)
    page.wait_for_selector("text=study default")
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()
    page.locator("[role=row]", has_text="study default").locator("button").first.click()
    page.wait_for_selector("text=trial 0")
    show_columns(page)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "mlflow_runs.png"))


def trial_page(page: Page, out: Path) -> None:
    """The champion trial, as the evaluation run's name gives it."""
    evaluation = page.get_by_role("link", name=re.compile(r"^test evaluation \(trial \d+\)"))
    number = re.search(r"trial (\d+)", evaluation.first.inner_text()).group(1)  # type: ignore[union-attr]
    page.get_by_role("link", name=f"trial {number}", exact=True).first.click()
    page.wait_for_selector("text=Description")
    page.wait_for_timeout(2000)
    page.screenshot(path=str(out / "mlflow_trial.png"), full_page=True)


def main(url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        run_table(page, url, out)
        trial_page(page, out)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "docs"))
