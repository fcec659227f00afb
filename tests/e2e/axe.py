"""axe-core checks for the browser tests: WCAG 2.2 AA, zero violations allowed."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE = Axe()


def assert_no_axe_violations(page: Page) -> None:
    """Needs JavaScript on: axe runs inside the page (it cannot inject into a no-JS page)."""
    results = AXE.run(
        page,
        options={"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]},
    )
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"
