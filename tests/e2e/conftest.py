"""Browser tests: the real app on a free local port, seeded with the demo data, driven by Chromium.

One server and one browser for the whole session; every test gets fresh browser contexts
(so no cookie leaks from one test into another) through the `visit` fixture, which also
watches each page for console errors, CSP violations, failed loads and requests to other sites.

Nothing here uses the fixtures of `tests/conftest.py`: the e2e suite runs on its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response
from werkzeug.serving import BaseWSGIServer, make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
TIMEOUT_MS = 10_000


# --- the server -------------------------------------------------------------------------------


@dataclass
class LiveServer:
    app: Flask
    url: str
    data_dir: Path
    translation_problem: str | None = None  # why the German catalog could not be compiled

    def user_id(self, email: str) -> int:
        from sqlalchemy import func, select

        from app.extensions import db
        from app.models import User

        with self.app.app_context():
            user_id = db.session.scalar(select(User.id).where(func.lower(User.email) == email))
            db.session.remove()
        assert user_id is not None, f"{email} is not in the test database"
        return user_id


def queue_newsletter(subscriber: Any) -> None:
    """What the sending system does: this issue of the newsletter, with its links, queued and
    committed (inside an app context)."""
    from app.extensions import db
    from app.services import marketing

    marketing.queue_marketing_mail(
        subscriber,
        "newsletter",
        "marketing_newsletter",
        headline="Ten prompts for autumn",
        paragraphs=["Misty forests, warm lamplight and a fox or two."],
    )
    db.session.commit()


def send_newsletter(server: LiveServer, address: str) -> int:
    """The newsletter to a confirmed reader of the newsletter and the offers. The reader's
    subscriber id."""
    from app.extensions import db
    from app.services import marketing

    with server.app.app_context():
        marketing.seed_subscriber(address, ("newsletter", "offers"))
        subscriber = marketing.find_subscriber(address)
        assert subscriber is not None
        queue_newsletter(subscriber)
        subscriber_id = subscriber.id
        db.session.remove()
    return subscriber_id


def _compile_translations(project_root: Path) -> str | None:
    """Compile the catalogs (`.mo` files are not committed); the problem, if any, as text."""
    catalogs = project_root / "translations"
    sources = sorted(catalogs.glob("*/LC_MESSAGES/messages.po"))
    stale = [
        po
        for po in sources
        if not po.with_suffix(".mo").exists()
        or po.with_suffix(".mo").stat().st_mtime < po.stat().st_mtime
    ]
    if not stale:
        return None
    pybabel = Path(sys.executable).with_name("pybabel")
    command = [
        str(pybabel if pybabel.exists() else shutil.which("pybabel") or "pybabel"),
        "compile",
        "-d",
        str(catalogs),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"`pybabel compile -d translations` failed:\n{result.stdout}{result.stderr}"
    return None


def _seed(app: Flask) -> None:
    from app.services.demo import seed_demo

    with app.app_context():
        seed_demo(heavy=None, echo=lambda *args, **kwargs: None)


@contextmanager
def serve_app(data_dir: Path, **settings: Any) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 and a free port, with a fresh migrated and seeded SQLite database
    in `data_dir`; `settings` override the defaults (an SMTP server, a grace period)."""
    from app import create_app
    from app.config import PROJECT_ROOT
    from app.extensions import db
    from app.migrations_cli import upgrade_database

    translation_problem = _compile_translations(PROJECT_ROOT)
    holder: dict[str, Flask] = {}

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return holder["app"](environ, start_response)

    # Bound before the app exists, so the app knows its own address (BASE_URL) from the start.
    server: BaseWSGIServer = make_server("127.0.0.1", 0, wsgi, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    app: Flask | None = None
    try:
        app = create_app(
            {
                "env": "development",
                "demo_mode": True,
                "data_dir": data_dir,
                "mail_outbox_dir": data_dir / "outbox",
                "smtp_host": "",
                "database_url": f"sqlite:///{data_dir / 'e2e.sqlite3'}",
                "redis_url": "",
                "jobs_mode": "inline",
                "rate_limits": False,
                "base_url": url,
                **settings,
            }
        )
        with app.app_context():
            upgrade_database()
        _seed(app)
        holder["app"] = app
        thread.start()
        yield LiveServer(
            app=app, url=url, data_dir=data_dir, translation_problem=translation_problem
        )
    finally:
        if thread.is_alive():
            server.shutdown()
            thread.join(timeout=10)
        server.server_close()
        if app is not None:
            with app.app_context():
                db.engine.dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app every browser test shares (tests that change data use demo2 and restore it)."""
    with serve_app(tmp_path_factory.mktemp("e2e-data")) as server:
        yield server


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], browser_name: str
) -> dict[str, Any]:
    """Debian's Chromium when it is installed (`playwright install` cannot download here)."""
    args = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    args.setdefault("headless", True)
    if browser_name == "chromium" and CHROMIUM.exists():
        args["executable_path"] = str(CHROMIUM)
    return args


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    """Pages are opened by path (`page.goto("/login")`) against the live server.

    (This also replaces pytest-playwright's own `base_url` fixture, a class method that
    recent pytest reports with a deprecation warning, an error under this project's settings.)
    """
    return live_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "locale": "en-GB"}


@dataclass
class PageWatch:
    """Everything a page did that a careful user (or their browser's console) would flag."""

    origin: str
    problems: list[str] = field(default_factory=list)
    # Documents that are meant to answer with an error status (a 404 page, a refused sign-in).
    expected_statuses: dict[str, int] = field(default_factory=dict)

    def attach(self, context: BrowserContext) -> None:
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))
        context.on("request", self._request)
        context.on("requestfailed", self._request_failed)
        context.on("response", self._response)

    def expect_status(self, path: str, status: int) -> None:
        self.expected_statuses[self.origin + path] = status

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if "Content Security Policy" in text:
            self.problems.append(f"CSP violation: {text}")
            return
        url = message.location.get("url", "")
        if text.startswith("Failed to load resource") and url in self.expected_statuses:
            status = self.expected_statuses[url]
            if f"status of {status} " in text:
                return  # the browser's own note about the error page the test asked for
        self.problems.append(f"console error: {text} ({url})")

    def _request(self, request: Request) -> None:
        if not request.url.startswith(self.origin + "/"):
            self.problems.append(f"request to another origin: {request.method} {request.url}")

    def _request_failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # cancelled by the browser because the page moved on (a quick click)
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status < 400:
            return
        if self.expected_statuses.get(response.url) == response.status:
            return
        self.problems.append(f"HTTP {response.status} for {response.request.method} {response.url}")

    def take_problems(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems

    def assert_clean(self) -> None:
        problems = self.take_problems()
        assert not problems, "the browser reported problems:\n" + "\n".join(problems)


@dataclass
class Visitor:
    """A person with a browser: one fresh context, one tab, and what the browser noticed."""

    page: Page
    watch: PageWatch
    context: BrowserContext

    def open(self, path: str, status: int = 200) -> Response:
        if status != 200:
            self.watch.expect_status(path, status)
        response = self.page.goto(self.watch.origin + path if path.startswith("/") else path)
        assert response is not None, f"no response for {path}"
        assert response.status == status, f"{path} answered {response.status}, not {status}"
        self.watch.assert_clean()
        return response

    def sign_in(self, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> None:
        """Through the real form, by keyboard: type both fields, press Enter."""
        self.open("/login")
        self.page.get_by_label("Email address").fill(email)
        password_field = self.page.get_by_label("Password")
        password_field.fill(password)
        with self.page.expect_navigation():
            password_field.press("Enter")


@pytest.fixture
def visit(
    new_context: Callable[..., BrowserContext], live_server: LiveServer
) -> Iterator[Callable[..., Visitor]]:
    """`visit()` opens a fresh browser context; `visit(java_script_enabled=False)` too."""
    with visitors_of(live_server, new_context) as _visit:
        yield _visit


@contextmanager
def visitors_of(
    server: LiveServer, new_context: Callable[..., BrowserContext]
) -> Iterator[Callable[..., Visitor]]:
    """Fresh browser contexts watched against `server`'s origin; at the end, whatever the
    browsers noticed after a test's last own check still counts."""
    visitors: list[Visitor] = []

    def _visit(**context_args: Any) -> Visitor:
        context = new_context(**context_args)
        context.set_default_timeout(TIMEOUT_MS)
        watch = PageWatch(origin=server.url)
        watch.attach(context)
        visitor = Visitor(page=context.new_page(), watch=watch, context=context)
        visitors.append(visitor)
        return visitor

    yield _visit
    leftovers = [problem for v in visitors for problem in v.watch.take_problems()]
    assert not leftovers, "the browser reported problems:\n" + "\n".join(leftovers)
