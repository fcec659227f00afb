"""The scaled topology, for real: `scripts/serve.sh` (what `make serve` runs) starts gunicorn
with 3 workers, one RQ worker and the sweeper, on a throwaway PostgreSQL database and a Redis
database of its own, with mail going to a real SMTP server. In Chromium, the demo user asks for
an export (built by the worker), unsubscribes from a marketing email's link, and deletes the
account; the logs of every process are JSON and never show the address or a link's token.

Needs TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import Browser, expect

from app.config import PROJECT_ROOT
from tests.e2e.conftest import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    TIMEOUT_MS,
    PageWatch,
    Visitor,
    queue_newsletter,
)
from tests.support.environment import SETTINGS_ENV
from tests.support.mailbox import Received, SMTPServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
REQUEST_LINK = re.compile(r"https?://\S+/requests/confirm/\S+")
UNSUBSCRIBE_LINK = re.compile(r"https?://\S+/unsubscribe/[A-Za-z0-9_.\-]+")
BUILD_TIMEOUT_MS = 30_000


@dataclass
class Topology:
    url: str
    env: dict[str, str]
    log: Path
    database_url: str
    smtp: SMTPServer

    def flask(self, *args: str) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "wsgi", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"flask {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def sql(self, statement: str, **params: Any) -> Any:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                return connection.execute(text(statement), params).scalar()
        finally:
            engine.dispose()

    def mail_to(self, address: str, count: int) -> list[Received]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            received = [m for m in self.smtp.messages if address in m.rcpt_tos]
            if len(received) >= count:
                return received
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} message(s) reached {address}")

    def mail_titled(self, address: str, subject: str) -> Received:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in self.smtp.messages:
                if address in message.rcpt_tos and message.message["Subject"] == subject:
                    return message
            time.sleep(0.2)
        raise AssertionError(f"no message {subject!r} reached {address}")

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


def _urls() -> tuple[str, str]:
    database, redis = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if not (database and redis):
        pytest.skip("the scaled topology needs TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL")
    if not database.startswith(("postgres://", "postgresql")):
        pytest.skip("the scaled topology needs PostgreSQL in TEST_DATABASE_URL")
    return database, redis


def _redis_database_of_this_worker(url: str) -> str:
    """Its own Redis database number (one per xdist worker, as tests/conftest.py does): an
    RQ worker on a shared database would take other runs' jobs."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker[2:]) if worker[2:].isdigit() else 0
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + offset + 8) % 16}"))


def _seed(database_url: str, data_dir: Path) -> None:
    from app import create_app
    from app.services.demo import seed_demo
    from tests.support.databases import dispose_engines, migrate

    app = create_app(
        {
            "database_url": database_url,
            "data_dir": data_dir,
            "redis_url": "",
            "jobs_mode": "inline",
            "smtp_host": "",
            "demo_mode": True,
            "env": "development",
        }
    )
    migrate(app)
    with app.app_context():
        seed_demo(heavy=None, echo=lambda *args, **kwargs: None)
    dispose_engines(app)


def _wait_until_up(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve.sh stopped ({server.returncode}):\n{log.read_text()}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.3)
    raise AssertionError(f"the topology did not answer in time:\n{log.read_text()}")


def _session_members(session_id: int) -> list[int]:
    """Every process of serve.sh's session: it and each of its process groups."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session_id:
            members.append(int(stat.parent.name))
    return members


def _stop(server: subprocess.Popen[bytes]) -> None:
    """TERM to serve.sh (which stops its process groups); then KILL whatever is left."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
    for pid in _session_members(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    if server.poll() is None:
        server.wait(timeout=5)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    from redis import Redis

    from app.config import normalise_database_url
    from tests.support.databases import (
        UnreachableError,
        create_postgres_database,
        drop_postgres_database,
    )

    server_url, redis_server = _urls()
    server_url = normalise_database_url(server_url)
    redis_url = _redis_database_of_this_worker(redis_server)
    try:
        database_url = create_postgres_database(server_url)
    except UnreachableError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc})")
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    data_dir = tmp_path_factory.mktemp("scaled")
    smtp = SMTPServer().start()
    server: subprocess.Popen[bytes] | None = None
    try:
        _seed(database_url, data_dir)
        port = free_port()
        env = {name: value for name, value in os.environ.items() if name not in SETTINGS_ENV}
        env.update(
            PRIVACY_CENTER_ENV="development",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            DATA_DIR=str(data_dir),
            BASE_URL=f"http://127.0.0.1:{port}",
            SMTP_HOST=smtp.host,
            SMTP_PORT=str(smtp.port),
            DELETION_GRACE_DAYS="0",
            LOG_FORMAT="json",
            PORT=str(port),
            WEB_WORKERS="3",
            SWEEP_SECONDS="3600",  # the test runs the sweeper itself, when it needs it
            PYTHONUNBUFFERED="1",
        )
        log = data_dir / "serve.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [str(PROJECT_ROOT / "scripts" / "serve.sh")],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_until_up(port, server, log)
        yield Topology(f"http://127.0.0.1:{port}", env, log, database_url, smtp)
    finally:
        if server is not None:
            _stop(server)
        smtp.stop()
        redis.flushdb()
        redis.close()
        drop_postgres_database(database_url, server_url)


@pytest.fixture
def person(browser: Browser, topology: Topology) -> Iterator[Visitor]:
    context = browser.new_context(locale="en-GB", accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    watch = PageWatch(origin=topology.url)
    watch.attach(context)
    yield Visitor(page=context.new_page(), watch=watch, context=context)
    context.close()
    watch.assert_clean()


def _send_newsletter(topology: Topology) -> Received:
    """What the sending system does, through the topology: queued on Redis, sent by the RQ
    worker to the SMTP server."""
    from app import create_app
    from app.services import marketing
    from tests.support.databases import dispose_engines

    env = topology.env
    app = create_app(
        {
            "database_url": env["DATABASE_URL"],
            "redis_url": env["REDIS_URL"],
            "jobs_mode": "rq",
            "data_dir": Path(env["DATA_DIR"]),
            "base_url": topology.url,
            "smtp_host": env["SMTP_HOST"],
            "smtp_port": int(env["SMTP_PORT"]),
            "env": "development",
        }
    )
    before = len(topology.smtp.messages)
    with app.app_context():
        subscriber = marketing.find_subscriber(DEMO_EMAIL)
        assert subscriber is not None, "the demo user is not on the mailing list"
        queue_newsletter(subscriber)
    dispose_engines(app)
    return topology.mail_to(DEMO_EMAIL, before + 1)[-1]


def test_export_unsubscribe_and_deletion_through_gunicorn_rq_and_postgresql(
    browser: Browser, person: Visitor, topology: Topology
) -> None:
    page = person.page
    person.sign_in()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Sign in")

    # The export: asked in the browser, built by the RQ worker, downloaded.
    person.open("/exports")
    with page.expect_response(lambda r: r.request.method == "POST") as asked:
        page.get_by_role("button", name="Ask for this export").click()
    export_request_id = asked.value.headers["x-request-id"]
    ready = page.locator(".export-list > li").first
    expect(ready).to_contain_text("Ready to download.", timeout=BUILD_TIMEOUT_MS)
    with page.expect_download() as download_info:
        ready.get_by_role("link", name=re.compile("^Download")).click()
    path = download_info.value.path()
    assert path is not None
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        assert {"manifest.json", "index.html"} <= set(archive.namelist())

    # Unsubscribe: from a newsletter the worker sent, by its link, without signing in.
    newsletter = _send_newsletter(topology)
    found = UNSUBSCRIBE_LINK.search(newsletter.text)
    assert found, newsletter.text
    unsubscribe_link = found.group(0)
    reader = browser.new_context(locale="en-GB")
    reader_page = reader.new_page()
    reader_page.goto(unsubscribe_link)
    reader_page.get_by_role("button", name="Unsubscribe").click()
    expect(reader_page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    reader.close()
    assert (
        topology.sql(
            "SELECT t.status FROM topic_subscriptions t JOIN marketing_subscribers s "
            "ON s.id = t.subscriber_id WHERE lower(s.email) = :email AND t.topic = 'newsletter'",
            email=DEMO_EMAIL,
        )
        == "unsubscribed"
    )

    # Deletion: asked, confirmed by the emailed link, run by the sweeper (no cooling-off).
    mails_before = len(topology.mail_to(DEMO_EMAIL, 0))
    person.open("/requests/new/delete_account")
    page.get_by_role("button", name="Ask for my account to be deleted").click()
    expect(page.get_by_text("check your email", exact=False).first).to_be_visible()
    verify = topology.mail_to(DEMO_EMAIL, mails_before + 1)[-1]
    confirm = REQUEST_LINK.search(verify.text)
    assert confirm, verify.text
    person.open(confirm.group(0))
    page.get_by_role("button", name="Confirm the request").click()
    expect(page.get_by_text("deleted", exact=False).first).to_be_visible()
    topology.flask("requests", "process-due")
    deadline = time.monotonic() + 20
    while topology.sql("SELECT count(*) FROM users WHERE lower(email) = :e", e=DEMO_EMAIL):
        assert time.monotonic() < deadline, "the account is still there"
        time.sleep(0.3)
    topology.mail_titled(DEMO_EMAIL, "Your account has been deleted")

    # The logs of every process: JSON, with the request ids, and nothing personal.
    lines = topology.log_lines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    loggers = {record["logger"] for record in records}
    assert {"app.request", "gunicorn.error", "rq.worker"} <= loggers
    assert all(line.startswith("{") for line in lines if "Traceback" in line or "ERROR" in line)
    export_lines = [r for r in records if r["logger"] == "app.request"]
    assert any(r["request_id"] == export_request_id for r in export_lines)
    assert any(export_request_id in r["message"] for r in records if r["logger"] == "rq.worker"), (
        "the export job did not carry the request id to the worker"
    )
    text = "\n".join(lines)
    for secret in (
        DEMO_EMAIL,
        DEMO_PASSWORD,
        unsubscribe_link.rsplit("/", 1)[1],
        confirm.group(0).rsplit("/", 1)[1],
    ):
        assert secret not in text, f"{secret!r} is in the logs"
