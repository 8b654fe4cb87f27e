"""What the browser tests share: Debian's chromium through playwright, the app served from a subprocess, login.

Both browser test modules start `python -m labeling_app` on a free loopback port over their own
seeded RLHF_HOME (`serve_app`), drive one chromium (`browser` fixture) and log in through the form
(`open_as`). Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from conftest import REPO
from labeling_app import serve

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct horse battery"
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                                  "(apt-get install chromium; `just browser` does it)")


@contextlib.contextmanager
def serve_app(home: Path, env: dict):
    """Run the labeling app over `home` until the block ends; yields its base url. Fails the test with the log if it never answers."""
    try:
        with serve.served(home, env, timeout=90) as url:
            yield url
    except serve.AppDidNotStart as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def open_as(browser, url: str, name: str):
    """A new page logged in as `name`; `page.dialogs` collects (and dismisses) any alert the page raises."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(20000)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url + "/")
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#header:has-text('Signed in as')")
    page.dialogs = dialogs
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
