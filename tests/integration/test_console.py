"""The local console in a real browser: Debian's Chromium driven by Playwright, over the demo's two runs (the
paired sample that succeeds, the broken file that fails Validate with InvalidFastq) on a local stack.

Screenshots go to $HELIXFLOW_TEST_ARTEFACTS (default test-artefacts/ in the checkout); with
HELIXFLOW_UPDATE_SCREENSHOTS=1 the README's docs/img/console-*.png are rewritten from this run too."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from helixflow_local.client import submit, wait_for_run
from helixflow_local.demo_data import write_broken_sample, write_paired_sample
from helixflow_local.stack import LocalStack
from tests.helpers import poll_until, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
ARTEFACTS = Path(os.environ.get("HELIXFLOW_TEST_ARTEFACTS", ROOT / "test-artefacts")) / "console"


@pytest.fixture(scope="module")
def browser():
    require_tool(CHROMIUM is not None, "Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright's own browser download cannot work here: the Debian binary, headless.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield launched
        launched.close()


def _shoot(page, name: str, selector: str | None = None) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (page.locator(selector) if selector else page).screenshot(path=str(ARTEFACTS / f"{name}.png"))
    if os.environ.get("HELIXFLOW_UPDATE_SCREENSHOTS") == "1":
        from PIL import Image  # a 128-colour palette keeps the committed PNGs small

        target = ROOT / "docs" / "img" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(ARTEFACTS / f"{name}.png").convert("RGB").quantize(colors=128).save(target, optimize=True)


def _first_working_execution(stack: LocalStack) -> str | None:
    """The execution that runs the pair (the first mate's only waits for the second), once it is past Validate."""
    sfn = stack.client("stepfunctions")
    for listed in sfn.list_executions(stateMachineArn=stack.info.state_machine_arn)["executions"]:
        events = sfn.get_execution_history(executionArn=listed["executionArn"], maxResults=1000)["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
        if "PlanPhase1" in entered:
            return listed["name"]
    return None


def test_console_lists_runs_draws_their_graphs_and_follows_a_running_one(tmp_path, browser):
    r1, r2 = write_paired_sample(tmp_path / "inputs", pairs=500)
    broken = write_broken_sample(tmp_path / "inputs")
    with LocalStack(tmp_path / "state") as stack:
        url = stack.info.console_url
        assert url.startswith("http://127.0.0.1:")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        blocked = []
        page.on("request", lambda request: None if request.url.startswith(url) else blocked.append(request.url))

        # A running execution: its page follows it to the end without a reload.
        uploaded = submit(stack.info, [r1, r2])
        running = poll_until(lambda: _first_working_execution(stack), timeout=120, what="the pair's execution")
        page.goto(f"{url}executions/{running}")
        assert page.locator("body").get_attribute("data-status") == "RUNNING"
        # A selector, not wait_for_function: the page's Content-Security-Policy forbids evaluating strings.
        page.wait_for_selector("body:not([data-status='RUNNING'])", state="attached", timeout=300_000)
        assert page.locator("#run-status").inner_text() == "SUCCEEDED", page.locator(".facts").inner_text()
        assert "st-succeeded" in page.locator("#state-Publish").get_attribute("class")  # redrawn, not reloaded
        good = wait_for_run(stack.info, uploaded, timeout=60)["name"]
        assert good == running
        failed = wait_for_run(stack.info, submit(stack.info, [broken]), timeout=240)["name"]

        # The list: both runs, with sample, status and placement; the status filter narrows it.
        page.goto(url)
        row = page.locator(f"tr.execution[data-name='{good}']")
        assert row.locator(".badge").inner_text() == "SUCCEEDED"
        assert row.locator(".sample").inner_text() == "demo"
        assert "phase1 lambda" in row.inner_text()
        assert page.locator(f"tr.execution[data-name='{failed}'] .badge").inner_text() == "FAILED"
        _shoot(page, "console-executions")
        page.goto(f"{url}?status=FAILED")
        assert page.locator("tr.execution").count() == 1
        assert page.locator("tr.execution").get_attribute("data-name") == failed

        # The good run: Publish succeeded in the graph; a state's input/output on click; its report links.
        page.goto(f"{url}executions/{good}")
        assert "st-succeeded" in page.locator("#state-Publish").get_attribute("class")
        assert "st-not-run" in page.locator("#state-SubmitPhase1Job").get_attribute("class")  # Lambda path, not Ray
        page.locator("#state-Validate").click()
        page.wait_for_selector("#state-detail .detail-output")
        assert '"records": 500' in page.locator("#state-detail .detail-output").inner_text()
        _shoot(page, "console-execution", ".graph-and-detail")
        manifest = page.locator("a[href$='/results/manifest.json']").get_attribute("href")
        files = json.loads(urllib.request.urlopen(url.rstrip("/") + manifest, timeout=10).read())["files"]
        assert any(entry["path"].endswith(".html") for entry in files)
        assert page.locator("a.report").count() >= 1
        assert page.locator("#events table.events tbody tr").count() == 25  # first page of the history
        page.locator("a[data-events-page='2']").click()
        page.wait_for_selector("nav.pages[data-page='2']")
        # Its Distributed Map: DescribeMapRun's item counts, every item succeeded; no cluster job, so no job log.
        map_run = page.locator("#map-runs table.map-run")
        assert map_run.get_attribute("data-status") == "SUCCEEDED"
        total = int(map_run.locator(".items-total").inner_text())
        assert total >= 1 and int(map_run.locator(".items-succeeded").inner_text()) == total
        assert map_run.locator(".items-failed").inner_text() == "0"
        page.wait_for_selector("#job-logs p:has-text('No Ray or Slurm job in this run.')")
        # The run's Lambda log lines, from the stack's CloudWatch Logs, each carrying the run id.
        page.wait_for_selector("#logs pre.logs")
        assert "run published" in page.locator("#logs pre.logs").inner_text()
        assert good in page.locator("#logs pre.logs").inner_text()
        # Only the run's own results/ and errors/ objects: a path that climbs out of them is refused.
        connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")), timeout=10)
        connection.request("GET", f"/executions/{good}/results/qc/%2E%2E/%2E%2E/%2E%2E/incoming/demo_R1.fastq.gz")
        assert connection.getresponse().status == 404

        # The broken run: Validate failed with its error name, and its error.json is linked.
        page.goto(f"{url}executions/{failed}")
        assert "st-failed" in page.locator("#state-Validate").get_attribute("class")
        assert "st-not-run" in page.locator("#state-Publish").get_attribute("class")
        assert "No Distributed Map ran" in page.locator("#map-runs").inner_text()  # it failed before Phase 1
        assert page.locator("#states tr[data-state='Validate'] .error-name").inner_text() == "InvalidFastq"
        assert "InvalidFastq (SEQ_QUAL_LENGTH_MISMATCH)" in page.locator("#run-error").inner_text()
        error_link = page.locator("a[href$='/errors/error.json']").get_attribute("href")
        error = json.loads(urllib.request.urlopen(url.rstrip("/") + error_link, timeout=10).read())
        assert (error["error"], error["code"]) == ("InvalidFastq", "SEQ_QUAL_LENGTH_MISMATCH")
        page.locator("#state-Validate").click()
        page.wait_for_selector("#state-detail .detail-error")
        assert page.locator("#state-detail .detail-error").inner_text() == "InvalidFastq"
        _shoot(page, "console-failed")
        assert blocked == []  # nothing fetched from anywhere but the console
