"""What the browser sees of the site's security: cookies, CSP, and nothing from other sites."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
SESSION_COOKIE = "pc_session"


def test_before_sign_in_no_cookie_but_the_session_cookie(visit):
    visitor = visit()
    visitor.open("/")
    visitor.open("/login")
    visitor.page.get_by_label("Email address").fill(DEMO_EMAIL)  # typing sets nothing either
    names = {cookie["name"] for cookie in visitor.context.cookies()}
    assert names <= {SESSION_COOKIE}, f"cookies set before signing in: {sorted(names)}"


def test_session_cookie_is_httponly_and_samesite_lax(visit):
    visitor = visit()
    visitor.sign_in(DEMO_EMAIL, DEMO_PASSWORD)
    expect(visitor.page.get_by_role("button", name="Sign out")).to_be_visible()

    cookies = {cookie["name"]: cookie for cookie in visitor.context.cookies()}
    assert set(cookies) == {SESSION_COOKIE}, f"cookies after signing in: {sorted(cookies)}"
    session = cookies[SESSION_COOKIE]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["domain"] == "127.0.0.1"  # a host-only cookie, not one for a parent domain
    # What HttpOnly means for a person: no script on the page can read the session.
    assert SESSION_COOKIE not in visitor.page.evaluate("() => document.cookie")


def test_every_linked_page_stays_on_this_site_without_csp_violations(visit, live_server):
    visitor = visit()
    page = visitor.page
    requested: list[str] = []
    visitor.context.on("request", lambda request: requested.append(request.url))

    visitor.open("/")
    visitor.open("/login")
    visitor.sign_in(DEMO_EMAIL, DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    visitor.watch.assert_clean()

    # Every page the overview links to on this site (navigation, footer), one after another.
    links = page.eval_on_selector_all(
        "a[href^='/']", "links => links.map(link => link.getAttribute('href'))"
    )
    paths = sorted({link.split("#")[0] for link in links if not link.startswith("//")} - {""})
    assert len(paths) >= 5, f"expected the navigation and footer links, got {paths}"
    for path in paths:
        visitor.open(path)  # asserts 200 and a clean console after each page

    # The watch saw the page's own files come from this site (so it can see requests at all).
    assert f"{live_server.url}/static/css/app.css" in requested
    assert f"{live_server.url}/static/vendor/htmx.min.js" in requested
    foreign = [url for url in requested if not url.startswith(live_server.url + "/")]
    assert not foreign, f"requests to other sites: {foreign}"


def test_content_security_policy_refuses_injected_inline_script(visit):
    """If someone managed to inject a script into a page, the browser would not run it."""
    visitor = visit()
    page = visitor.page
    visitor.open("/")
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.injectedScriptRan = true";
                document.body.append(script);
            }"""
        )
    assert page.evaluate("() => window.injectedScriptRan") is None
    # The same watch that guards every other test reports it as a CSP violation.
    problems = visitor.watch.take_problems()
    assert any(problem.startswith("CSP violation") for problem in problems), problems
