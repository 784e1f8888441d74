"""The Dagster UI in a real browser: every schedule listed, one toggled off, instance agrees.

Debian's headless Chromium (/usr/bin/chromium, installed by .ci/run) driven by Playwright
against a real dagster-webserver on loopback; a screenshot of each step is kept under
test-artifacts/ui/.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from tests.support.dagster_stack import REPO_ROOT, DagsterStack
from tests.support.services import in_ci, wait_until
from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

CHROMIUM = Path(os.environ.get("VALIDIBOT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
# Without these, Chromium tries Google's hosts at start-up, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def ui_stack(postgres_service, tmp_path_factory):
    with DagsterStack.create(
        tmp_path_factory.mktemp("ui-stack"), executor="in_process", task_modules=()
    ) as stack:
        _proc, url = stack.start_webserver()
        yield stack, url


def _dismiss_welcome(page) -> None:
    """Dagster's one-time "join the community" dialog opens a moment after the first page."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_role("button", name="Skip").first.click(timeout=4000)


def _stored_status(stack, schedule_name: str):
    with stack.instance() as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE):
            if state.instigator_name == schedule_name:
                return state.status
    return None


def test_the_ui_lists_every_schedule_and_a_toggle_stops_one(browser, ui_stack):
    stack, url = ui_stack
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    page.goto(f"{url}/automation")
    page.get_by_text("purge_expired_submissions_schedule").first.wait_for(timeout=60_000)
    _dismiss_welcome(page)
    for task in (t for t in BUILTIN_TASKS if BACKEND_DAGSTER in t.backends):
        assert page.get_by_text(task.schedule_name, exact=True).count() == 1, task.schedule_name
    page.screenshot(path=str(ARTIFACTS / "automation.png"), full_page=True)

    target = "clear_sessions_schedule"
    assert _stored_status(stack, target) is None  # running by default, nothing stored yet
    page.goto(f"{url}/locations/validibot_ops/schedules/{target}")
    page.get_by_text("Next tick").first.wait_for(timeout=60_000)
    _dismiss_welcome(page)
    running_row = page.locator("tr", has_text="Running").first
    switch = running_row.locator("input[type=checkbox]")
    wait_until(switch.is_enabled, 30, what="the schedule switch to be enabled")
    assert switch.is_checked()
    running_row.locator("label svg").click()  # the visible switch; the input itself is hidden

    wait_until(
        lambda: _stored_status(stack, target) == InstigatorStatus.STOPPED,
        30,
        what=f"{target} to be STOPPED in the instance",
    )
    wait_until(lambda: not switch.is_checked(), 10, what="the switch to show stopped")
    page.screenshot(path=str(ARTIFACTS / "schedule-stopped.png"))
    # Only the toggled schedule changed.
    assert _stored_status(stack, "purge_expired_submissions_schedule") is None
    page.close()


def test_the_asset_page_plots_each_runs_counts_with_their_legend(browser, ui_stack):
    """The per-task asset: the count legend from the registry, and one plot per count."""
    stack, url = ui_stack
    for _ in range(3):
        stack.manage("seed_demo_data", "--no-files")
        result = stack.run_cli(
            [
                "dagster",
                "job",
                "execute",
                "-m",
                "validibot_ops.definitions",
                "-j",
                "purge_expired_submissions",
            ]
        )
        assert result.returncode == 0, result.stderr[-2000:]
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{url}/assets/validibot_maintenance/purge_expired_submissions")
    page.get_by_text("Asset history").wait_for(timeout=60_000)
    _dismiss_welcome(page)
    assert page.get_by_text("rows whose content and stored files were removed").count() >= 1
    page.get_by_role("button", name="Plots").click()
    for count in ("purged", "skipped_busy", "batches", "duration_s"):
        page.get_by_text(count, exact=True).first.wait_for(timeout=30_000)
    page.locator("text=Metadata").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "asset-plots.png"), full_page=True)
    page.close()
