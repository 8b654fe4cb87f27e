"""What the browser tests share: Debian's chromium through playwright, the app served from a subprocess, login.

The browser test modules start `python -m labeling_app` on a free loopback port over their own
seeded RLHF_HOME (`serve_app`), drive one chromium (`browser` fixture) and log in through the form
(`open_as`, one browser context per person unless told otherwise: a phone's viewport, two tabs
sharing a login). Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from conftest import REPO
from labeling_app import serve

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "correct horse battery"
MISSING = "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; `just browser` does it)"
REQUIRE_BROWSER = os.environ.get("RLHF_REQUIRE_BROWSER") == "1"
"""CI (`.ci/run`) installs chromium and sets this: a missing browser then fails the tests (the `browser` fixture)
instead of skipping them; on a laptop they skip with the reason"""
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists() and not REQUIRE_BROWSER, reason=MISSING)


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
    if not CHROMIUM.exists():  # only reached under RLHF_REQUIRE_BROWSER=1 (NEEDS_CHROMIUM skips otherwise)
        pytest.fail(f"RLHF_REQUIRE_BROWSER=1 but the browser tests {MISSING}", pytrace=False)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def open_as(browser, url: str, name: str, context=None, **page_options):
    """A new page logged in as `name` (in its own browser context unless `context` is given; `page_options` such as
    a phone's viewport go to `new_context`). `page.dialogs` collects (type, message) of every dialog the page raises,
    dismissed (an alert, a confirm, the "leave site?" of beforeunload); `page.requests` every URL it asked for."""
    if context is None:
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 1000}, **page_options})
    page = context.new_page()
    page.set_default_timeout(20000)
    page.dialogs, page.requests = [], []
    page.on("dialog", lambda d: (page.dialogs.append((d.type, d.message)), d.dismiss()))
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(url + "/")
    signed_in = page.locator("#header:has-text('Signed in as')")
    signed_in.or_(page.get_by_label("password")).first.wait_for()
    if not signed_in.count():  # a context that is already logged in goes straight to the app
        page.get_by_label("username").fill(name)
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#header:has-text('Signed in as')")
    return page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
