"""The run's MultiQC report in a real browser: Debian's Chromium driven by Playwright opens the report built from
the saved stage outputs (tests/fixtures/report/) with every request off the file blocked, and draws the fastp,
samtools and helixflow sections.

Screenshots go to $HELIXFLOW_TEST_ARTEFACTS (default test-artefacts/ in the checkout); with
HELIXFLOW_UPDATE_SCREENSHOTS=1 the README's docs/img/report-*.png are rewritten from this run too."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helixflow.pipeline import run_report
from helixflow.pipeline.publish import trace_rows
from tests.helpers import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SAVED = ROOT / "tests" / "fixtures" / "report" / "S1"
CHROMIUM = shutil.which("chromium")
ARTEFACTS = Path(os.environ.get("HELIXFLOW_TEST_ARTEFACTS", ROOT / "test-artefacts")) / "report"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    import json

    scratch = tmp_path_factory.mktemp("report")
    history = json.loads((ROOT / "tests" / "events" / "history_lambda_path_at_publish.json").read_text())
    info = run_report.RunInfo(
        sample="S1", run_id="demo-run", started_by="s3://helixflow-data/incoming/S1_R2.fastq.gz (S3 Object Created)",
        inputs=[{"key": "incoming/S1_R1.fastq.gz", "etag": "e1", "size": 45164, "mate": 1},
                {"key": "incoming/S1_R2.fastq.gz", "etag": "e2", "size": 45212, "mate": 2}],
        params={"phase2": "slurm-cpu", "reference": "references/ref.fa"},
        placements={"Phase 1": {"placement": "lambda", "reason": "fits one Lambda chunk"},
                    "Phase 2": {"placement": "slurm-cpu", "ranks": 1, "time_limit_minutes": 10}},
        trace=trace_rows(history, item_counts={"ProcessChunks": 1}),
        versions={"Phase1": {"helixflow": "0.1.0"}, "Phase2": {"samtools": "1.16.1"}})
    return run_report.build_report(SAVED, scratch / "out", info, work_dir=scratch / "work").html


@pytest.fixture(scope="module")
def browser():
    require_tool(CHROMIUM is not None, "Debian's chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        # Playwright's own browser download cannot work here: the Debian binary, headless.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield launched
        launched.close()


def test_the_report_draws_its_sections_offline(report, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    remote: list[str] = []

    def block(route):  # the report must not need the network: anything not from the file itself is refused
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    page.route("**/*", block)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report.as_uri(), wait_until="load")
    for section in ("fastp", "samtools", "helixflow_timeline", "helixflow_placement", "helixflow_embedding_norms",
                    "helixflow_nn_similarity", "helixflow_cluster_sizes"):
        page.wait_for_selector(f"#{section}", state="attached", timeout=30_000)
    # MultiQC draws its plots with plotly in the page: the timeline is drawn once scrolled into view.
    page.locator("#helixflow_timeline").scroll_into_view_if_needed()
    page.wait_for_selector("#helixflow_timeline_plot .main-svg", timeout=30_000)
    assert "demo-run" in page.inner_text(".mqc_header_info, #analysis_dirs_wrapper, body")
    assert remote == [] and errors == []
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    shots = [ARTEFACTS / "report-multiqc.png"]
    if os.environ.get("HELIXFLOW_UPDATE_SCREENSHOTS") == "1":
        shots.append(ROOT / "docs" / "img" / "report-multiqc.png")
    for shot in shots:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
    page.locator("#helixflow_timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTEFACTS / "report-timeline.png"))
    if os.environ.get("HELIXFLOW_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(ROOT / "docs" / "img" / "report-timeline.png"))
    page.close()
