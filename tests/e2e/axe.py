"""axe-core checks for the browser tests: WCAG 2.2 AA, zero violations allowed."""

from __future__ import annotations

from axe_playwright_python.base import AXE_SCRIPT, AxeResults
from playwright.sync_api import BrowserContext, Page

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}


def preload_axe(context: BrowserContext) -> None:
    """Load axe into every page of `context` as it opens, rather than sending its half a
    megabyte to each page checked (for tests that check many pages)."""
    context.add_init_script(script=AXE_SCRIPT)


def start_axe(page: Page) -> None:
    """Start the checks and return at once: pages in several tabs are checked side by side.

    Needs JavaScript on: axe runs inside the page (it cannot inject into a no-JS page)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    page.evaluate("options => { window.axeResults = axe.run(document, options); }", OPTIONS)


def axe_report(page: Page) -> str | None:
    """The report of the checks `start_axe` started in `page`, or None without violations."""
    results = AxeResults(page.evaluate("() => window.axeResults"))
    return None if results.violations_count == 0 else results.generate_report()


def axe_violations(page: Page) -> str | None:
    """axe's report of the page's violations, or None when there are none."""
    start_axe(page)
    return axe_report(page)


def assert_no_axe_violations(page: Page) -> None:
    report = axe_violations(page)
    assert report is None, f"{page.url}\n{report}"
