"""Driving the app through its real forms, and reading what came back."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

SESSION_COOKIE = "pc_session"


class _FormScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.csrf_tokens: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == "csrf_token" and values.get("value"):
            self.csrf_tokens.append(values["value"] or "")


def csrf_from_html(page: str) -> str:
    scanner = _FormScanner()
    scanner.feed(page)
    assert scanner.csrf_tokens, "the page has no form with a csrf_token"
    return scanner.csrf_tokens[0]


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """GET `path` as a browser would and take the CSRF token out of its form."""
    response = client.get(path)
    assert response.status_code == 200, f"GET {path} answered {response.status_code}"
    return csrf_from_html(response.get_data(as_text=True))


def post_form(
    client: FlaskClient,
    path: str,
    data: dict[str, str] | None = None,
    *,
    form_page: str | None = None,
    **kwargs: object,
) -> TestResponse:
    """POST a form the way a browser does: with the token from the page that shows it."""
    token = csrf_token(client, form_page or path)
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)  # type: ignore[arg-type]


def login(
    client: FlaskClient, email: str, password: str, next_url: str | None = None
) -> TestResponse:
    data = {"email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return post_form(client, "/login", data)


def session_and_token(
    client: FlaskClient, email: str | None = None, password: str = ""
) -> tuple[str | None, str]:
    """The session cookie and a CSRF token of `client`, signed in as `email` (or not at all),
    for tests that replay one session in many requests."""
    if email is None:
        token = csrf_token(client, "/login")
    else:
        response = login(client, email, password)
        assert response.status_code == 303, f"{email} could not sign in"
        token = csrf_token(client, "/profile")
    cookie = client.get_cookie(SESSION_COOKIE)
    return (cookie.value if cookie else None), token


def logout(client: FlaskClient) -> TestResponse:
    return post_form(client, "/logout", form_page="/")


def session_data(client: FlaskClient) -> dict[str, object]:
    with client.session_transaction() as session:
        return dict(session)


def signed_in_user_id(client: FlaskClient) -> str | None:
    return session_data(client).get("_user_id")  # type: ignore[return-value]


def text_of(response: TestResponse) -> str:
    """The body with entities decoded, so that assertions can use the plain wording."""
    return html.unescape(response.get_data(as_text=True))


def title_of(response: TestResponse) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", response.get_data(as_text=True), re.DOTALL)
    assert match, "the page has no <h1>"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def category_counts(page: str) -> dict[str, int]:
    """The overview's table: records per data-map category, as the person reads them."""
    counts = {}
    for key, number in re.findall(
        r'<tr data-category="([a-z_]+)">.*?<td class="num">([^<]*)</td>', page, re.DOTALL
    ):
        counts[key] = int(number.replace(",", "").replace(".", "").strip())
    return counts


class _HygieneScanner(HTMLParser):
    URL_ATTRIBUTES = frozenset({"src", "href", "action", "formaction", "srcset", "poster", "data"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.html_attrs: dict[str, str | None] | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.html_attrs = values
        if tag == "script":
            self._in_script = True
            if not values.get("src"):
                self.problems.append("a <script> without src")
        if tag == "style":
            self.problems.append("an inline <style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"a style= attribute on <{tag}>")
            if re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"an event handler {name}= on <{tag}>")
            if name in self.URL_ATTRIBUTES and value and not _is_same_origin(value):
                self.problems.append(f"<{tag} {name}={value!r}> points at another origin")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"an inline script body: {data.strip()[:60]!r}")


def _is_same_origin(url: str) -> bool:
    if url.startswith("mailto:"):  # opens the person's own mail program, loads nothing
        return True
    if url.startswith("//"):
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


def html_problems(page: str) -> tuple[list[str], dict[str, str | None]]:
    """What a strict CSP would block or a privacy page must not do; and the <html> attributes."""
    scanner = _HygieneScanner()
    scanner.feed(page)
    scanner.close()
    return scanner.problems, scanner.html_attrs or {}
