"""Soak: mixed traffic against the scaled topology while the RQ worker is killed and restarted.

    .venv/bin/python bench/soak.py                        # 60 s, 8 clients, PostgreSQL + Redis
    .venv/bin/python bench/soak.py --seconds 300 --clients 4 --kill-every 5
    .venv/bin/python bench/soak.py --database-url postgresql://postgres@127.0.0.1/pc_soak

The topology, started here: a throwaway PostgreSQL database (created on `--server`, default
TEST_DATABASE_URL or postgres@127.0.0.1:5432, and dropped afterwards; or `--database-url`, used
as it is and kept), Redis for RQ and the rate-limit counters (`--redis-url`, default db 11,
which the soak empties first), gunicorn with 3 sync workers on a free port, one RQ worker
(`jobs work`), the sweeper (`requests process-due`) every few seconds, and a real SMTP server
in this process that the worker sends mail to. Deletions have no cooling-off
(DELETION_GRACE_DAYS=0), so a confirmed deletion is erased at once.

The data: the demo accounts, small realistic accounts for exports and for deletions, and
newsletter-only subscribers whose real signed unsubscribe links are made by the app's own
service. Then `--clients` threads send, for `--seconds`, a mix of: anonymous browsing; cookie
decisions on the settings page (CSRF token from the page, sometimes with `Sec-GPC: 1`); RFC
8058 one-click unsubscribes; exports asked for by signed-in accounts; account deletions asked
for and then confirmed through the link in the email. Every `--kill-every` seconds the RQ
worker and its work horse get SIGKILL and a new worker starts.

Afterwards the traffic stops, the worker is killed a last time, jobs and erasures that a
killed worker held are aged past their 10-minute lock (as if that time had gone by: the
sweeper takes over such work only then), a fresh worker and the sweeper run until nothing is
left to do (at most `--settle-seconds`), and the database is checked:

- every consent receipt a browser was given (its signed cookie) is in the ledger, as given;
- every one-click unsubscribe answered "Unsubscribed." has its event and suppression entry,
  and its topic is unsubscribed;
- every export and deletion request is in a final state (a deletion nobody confirmed waits
  for the person), every acknowledged export exists, every confirmed deletion erased its
  account, no job is left queued, running or failed;
- no orphan files: no archive without a READY export, no temporary build file, no media file
  without its database row;
- `flask --app wsgi audit verify` passes; and no request was answered with a 5xx.

It prints requests by kind, answers by status, p50/p99 latency, throughput, worker kills and
the checks; the exit status is 1 when a check failed. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import os
import queue
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from serving import (
    PROJECT,
    VENV_BIN,
    flask,
    flask_command,
    free_port,
    start_gunicorn,
    stop,
    wait_until_up,
)

sys.path.insert(0, str(PROJECT))

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
CONFIRM_LINK = re.compile(r"/requests/confirm/([A-Za-z0-9_.\-]+)")
PASSWORD = "soak-password"
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
TOPICS = ("newsletter", "offers", "product_updates")
BROWSE_PAGES = (
    ("/", 200),
    ("/policy", 200),
    ("/preferences/cookies", 200),
    ("/preferences/marketing", 200),
    ("/requests", 200),
    ("/login", 200),
    ("/healthz", 200),
    ("/data", 302),  # to the sign-in page
)
WEIGHTS = {"browse": 35, "consent": 25, "one-click": 25, "export": 9, "deletion": 6}


# --- what the clients saw ---------------------------------------------------------------------


@dataclass
class Record:
    """What the clients were told, shared by the client threads (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    receipts: dict[str, dict[str, bool]] = field(default_factory=dict)  # receipt id: choices
    unsubscribes: Counter[tuple[int, str]] = field(default_factory=Counter)  # (subscriber, topic)
    exports: Counter[int] = field(default_factory=Counter)  # user id: acknowledged exports
    deletions_asked: dict[str, int] = field(default_factory=dict)  # address: user id
    deletions_confirmed: dict[str, int] = field(default_factory=dict)
    operations: Counter[str] = field(default_factory=Counter)

    def answer(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds * 1000)
            self.statuses[(kind, status)] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.unexpected.append(text)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: http.client.HTTPMessage


class Browser:
    """One person's browser: a keep-alive connection and its cookies."""

    def __init__(self, port: int, record: Record, *, gpc: bool = False) -> None:
        self.port = port
        self.record = record
        self.gpc = gpc
        self.cookies: dict[str, str] = {}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def close(self) -> None:
        self.connection.close()

    def send(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        form: dict[str, Any] | None = None,
        body: bytes | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Answer | None:
        headers = {"User-Agent": "soak/1", "Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.gpc:
            headers["Sec-GPC"] = "1"
        if form is not None:
            body = urlencode(form, doseq=True).encode()
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.record.answer(kind, 0, time.perf_counter() - started)
            self.record.problem(f"{kind}: {method} {path[:50]}: {type(exc).__name__}")
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return None
        self.record.answer(kind, response.status, time.perf_counter() - started)
        self._keep_cookies(response.headers)
        if response.status not in expect:
            self.record.problem(f"{kind}: {method} {path[:50]}: HTTP {response.status}")
        return Answer(response.status, data.decode("utf-8", "replace"), response.headers)

    def _keep_cookies(self, headers: http.client.HTTPMessage) -> None:
        for line in headers.get_all("Set-Cookie") or []:
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in line.lower() or "expires=thu, 01 jan 1970" in line.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def csrf(self, kind: str, path: str) -> str | None:
        page = self.send(kind, "GET", path)
        found = CSRF.search(page.body) if page and page.status == 200 else None
        return found[1] if found else None

    def sign_in(self, email: str) -> bool:
        token = self.csrf("sign-in", "/login")
        if token is None:
            return False
        form = {"email": email, "password": PASSWORD, "csrf_token": token}
        answer = self.send("sign-in", "POST", "/login", form=form, expect=(303,))
        return answer is not None and answer.status == 303


# --- the topology -----------------------------------------------------------------------------


class Worker:
    """The RQ worker process, killed (with its work horse) and restarted on demand."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "flask"), "--app", "wsgi", "jobs", "work"],
                cwd=PROJECT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would: the worker and every process under it (RQ's
        work horse runs in a session of its own, so a process-group kill would miss it)."""
        if self.process is None:
            return
        for pid in [*_descendants(self.process.pid), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        self.kills += 1


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children[int(fields[1])].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def sweep(env: dict[str, str]) -> None:
    done = flask_command(env, "requests", "process-due")
    if done.returncode != 0:
        raise RuntimeError(f"process-due failed:\n{done.stdout}{done.stderr[-3000:]}")


# --- the data ---------------------------------------------------------------------------------


@dataclass
class Seeded:
    export_accounts: list[tuple[int, str]]  # (user id, address)
    deletion_accounts: list[tuple[int, str]]
    unsubscribe_links: list[tuple[int, str, str]]  # (subscriber id, topic, path)


def _app(env: dict[str, str]) -> Any:
    """The app in this process, configured like gunicorn's (same settings, same database)."""
    os.environ.update(env)
    from app import create_app

    return create_app()


def seed(app: Any, *, export_accounts: int, deletion_accounts: int, subscribers: int) -> Seeded:
    from app.extensions import db
    from app.services import demo

    started = time.perf_counter()
    with app.app_context():
        demo.seed_demo(echo=lambda _line: None)
        accounts = []
        for n in range(export_accounts + deletion_accounts):
            profile = replace(
                demo.DEMO2,
                email=f"soak{n}@example.org",
                password=PASSWORD,
                name=f"Soak Person {n}",
                locale="en",
                country="DE",
                region=None,
                seed=7000 + n,
                prompts=12,
                images=2,
                uploads=1,
                sessions=6,
                invoice_code=f"SK{n}",
            )
            demo._AccountBuilder(profile, commit_each_batch=False).build()
            user = demo.find_user_by_email(profile.email)
            assert user is not None
            accounts.append((user.id, profile.email))
        links = _subscribers(app, subscribers)
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
        db.session.remove()
    print(
        f"  seeded {len(accounts)} accounts and {subscribers} subscribers: "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return Seeded(accounts[:export_accounts], accounts[export_accounts:], links)


def _subscribers(app: Any, count: int) -> list[tuple[int, str, str]]:
    """Newsletter-only readers subscribed to every topic; one link each, for one topic or all."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import MarketingSubscriber, TopicSubscription
    from app.services import marketing

    now = datetime.now(UTC)
    key = app.config["SETTINGS"].suppression_key
    emails = [f"reader{n}@example.org" for n in range(count)]
    db.session.execute(
        insert(MarketingSubscriber),
        [
            {
                "email": e,
                "email_hash": marketing.email_hash(e, key),
                "locale": "en",
                "created_at": now,
            }
            for e in emails
        ],
    )
    ids = list(
        db.session.scalars(
            select(MarketingSubscriber.id).where(MarketingSubscriber.email.in_(emails))
        )
    )
    db.session.execute(
        insert(TopicSubscription),
        [
            {
                "subscriber_id": i,
                "topic": topic,
                "status": TopicSubscription.SUBSCRIBED,
                "requested_at": now,
                "confirmed_at": now,
                "updated_at": now,
            }
            for i in ids
            for topic in TOPICS
        ],
    )
    db.session.commit()
    rng = random.Random(8058)
    links = []
    for i in ids:
        scope = rng.choice((*TOPICS, marketing.ALL_TOPICS))
        links.append((i, scope, f"/unsubscribe/{marketing.unsubscribe_token(i, scope)}"))
    return links


# --- the traffic ------------------------------------------------------------------------------


@dataclass
class Traffic:
    port: int
    record: Record
    secret_key: str
    mailbox: Any  # tests.support.mailbox.Mailbox
    links: list[tuple[int, str, str]]
    export_pool: queue.Queue[tuple[int, str, Browser | None]]
    deletion_pool: queue.Queue[tuple[int, str]]
    awaiting: dict[str, Browser] = field(default_factory=dict)  # address: signed-in browser
    awaiting_lock: threading.Lock = field(default_factory=threading.Lock)

    def browse(self, rng: random.Random, browser: Browser) -> None:
        path, status = rng.choice(BROWSE_PAGES)
        browser.send("browse", "GET", path, expect=(status,))

    def consent(self, rng: random.Random, _browser: Browser) -> None:
        from app.services.consent import COOKIE_NAME, decode_cookie

        visitor = Browser(self.port, self.record, gpc=rng.random() < 0.3)
        try:
            token = visitor.csrf("consent", "/preferences/cookies")
            if token is None:
                return
            decision = rng.choice(("accept_all", "reject_all", "save"))
            form = {
                "csrf_token": token,
                "decision": decision,
                "origin": rng.choice(("banner", "settings")),
                "next": "/",
                "allow": rng.sample(["preferences", "analytics", "advertising"], rng.randint(0, 3)),
            }
            answer = visitor.send(
                "consent", "POST", "/preferences/cookies", form=form, expect=(303,)
            )
            cookie = decode_cookie(visitor.cookies.get(COOKIE_NAME), [self.secret_key])
            if answer is not None and answer.status == 303 and cookie is not None:
                with self.record.lock:
                    self.record.receipts[cookie.receipt_id] = dict(cookie.choices)
        finally:
            visitor.close()

    def one_click(self, rng: random.Random, browser: Browser) -> None:
        subscriber_id, topic, path = rng.choice(self.links)
        answer = browser.send("one-click", "POST", path, body=ONE_CLICK_BODY, expect=(200, 429))
        if answer is not None and answer.status == 200 and answer.body.strip() == "Unsubscribed.":
            with self.record.lock:
                self.record.unsubscribes[(subscriber_id, topic)] += 1

    def export(self, rng: random.Random, browser: Browser) -> None:
        try:
            user_id, email, signed_in = self.export_pool.get_nowait()
        except queue.Empty:
            self.browse(rng, browser)
            return
        person = signed_in or Browser(self.port, self.record)
        try:
            if signed_in is None and not person.sign_in(email):
                return
            token = person.csrf("export", "/exports")
            if token is None:
                return
            form = {"csrf_token": token, "scope": "all"}
            answer = person.send("export", "POST", "/exports", form=form, expect=(303, 409, 429))
            if answer is not None and answer.status == 303:
                with self.record.lock:
                    self.record.exports[user_id] += 1
        finally:
            self.export_pool.put((user_id, email, person))

    def deletion(self, rng: random.Random, browser: Browser) -> None:
        try:
            user_id, email = self.deletion_pool.get_nowait()
        except queue.Empty:
            self.browse(rng, browser)
            return
        person = Browser(self.port, self.record)
        path = "/requests/new/delete_account"
        token = person.csrf("deletion", path) if person.sign_in(email) else None
        form = {"csrf_token": token, "details": ""}
        answer = person.send("deletion", "POST", path, form=form, expect=(303,)) if token else None
        if answer is None or answer.status != 303:
            person.close()
            return
        with self.record.lock:
            self.record.deletions_asked[email] = user_id
        with self.awaiting_lock:
            self.awaiting[email] = person  # signed in, waiting for the email

    def confirm_one(self) -> bool:
        """Follow one arrived confirmation link, if any; True when there was one."""
        links = self._arrived_links()
        with self.awaiting_lock:
            ready = [email for email in self.awaiting if email in links]
            if not ready:
                return False
            email = ready[0]
            person = self.awaiting.pop(email)
        path = f"/requests/confirm/{links[email]}"
        token = person.csrf("confirm", path)
        if token is not None:
            answer = person.send("confirm", "POST", path, form={"csrf_token": token}, expect=(303,))
            if answer is not None and answer.status == 303:
                with self.record.lock:
                    self.record.deletions_confirmed[email] = self.record.deletions_asked[email]
        person.close()
        return True

    def _arrived_links(self) -> dict[str, str]:
        links = {}
        for message in self.mailbox.messages:
            found = CONFIRM_LINK.search(message.text)
            if found:
                links[message.rcpt_tos[0]] = found[1]
        return links

    def run_client(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        browser = Browser(self.port, self.record)  # an anonymous visitor who keeps browsing
        operations: dict[str, Callable[[random.Random, Browser], None]] = {
            "browse": self.browse,
            "consent": self.consent,
            "one-click": self.one_click,
            "export": self.export,
            "deletion": self.deletion,
        }
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        while time.monotonic() < until:
            if self.awaiting and self.confirm_one():
                kind = "confirm"
            else:
                kind = rng.choices(kinds, weights)[0]
                operations[kind](rng, browser)
            with self.record.lock:
                self.record.operations[kind] += 1
        browser.close()


# --- afterwards -------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def age_abandoned_locks(app: Any) -> int:
    """Every worker is dead now: what one held is abandoned. Move its lock 10 minutes back,
    as if that time had gone by, so the sweeper takes it over now rather than in 10 minutes."""
    from sqlalchemy import update

    from app.extensions import db
    from app.jobs import STALE_AFTER
    from app.models import DataRequest, Job, utcnow

    past = utcnow() - STALE_AFTER - timedelta(seconds=1)
    with app.app_context():
        jobs = db.session.execute(
            update(Job).where(Job.status == Job.RUNNING).values(locked_at=past)
        ).rowcount
        erasures = db.session.execute(
            update(DataRequest)
            .where(DataRequest.status == DataRequest.ERASING)
            .values(erasure_locked_at=past)
        ).rowcount
        db.session.commit()
        db.session.remove()
    return int(jobs or 0) + int(erasures or 0)


def unfinished(app: Any) -> int:
    """Exports, requests and jobs still under way (a request waiting for its confirmation
    by the person is not: that is the person's move)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import DataRequest, Export, Job

    with app.app_context():
        count = sum(
            db.session.scalar(select(func.count()).select_from(model).where(condition)) or 0
            for model, condition in (
                (Export, Export.status.in_(Export.IN_PROGRESS)),
                (
                    DataRequest,
                    DataRequest.status.in_((DataRequest.WAITING, DataRequest.ERASING)),
                ),
                (Job, Job.status.in_((Job.QUEUED, Job.RUNNING))),
            )
        )
        db.session.remove()
    return int(count)


def check_database(app: Any, record: Record, data_dir: Path) -> list[Check]:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import (
        ConsentRecord,
        DataRequest,
        Export,
        GeneratedImage,
        Job,
        MarketingEvent,
        MarketingSubscriber,
        SuppressionEntry,
        TopicSubscription,
        Upload,
        User,
    )
    from app.services import marketing

    checks = []
    with app.app_context():
        ledger = dict(
            db.session.execute(
                select(ConsentRecord.receipt_id, ConsentRecord.choices).where(
                    ConsentRecord.receipt_id.in_(list(record.receipts))
                )
            ).all()
        )
        wrong = [r for r, choices in record.receipts.items() if ledger.get(r) != choices]
        checks.append(
            Check(
                "every acknowledged consent has its receipt",
                not wrong,
                f"{len(record.receipts)} receipts, {len(wrong)} missing or different",
            )
        )

        hashes = dict(
            db.session.execute(select(MarketingSubscriber.id, MarketingSubscriber.email_hash)).all()
        )
        events = Counter(
            db.session.execute(
                select(MarketingEvent.subscriber_id, MarketingEvent.topic).where(
                    MarketingEvent.source == "one_click", MarketingEvent.action == "unsubscribed"
                )
            ).all()
        )
        suppressions = Counter(
            db.session.execute(
                select(SuppressionEntry.email_hash, SuppressionEntry.topic).where(
                    SuppressionEntry.reason == "one_click"
                )
            ).all()
        )
        still = set(
            db.session.execute(
                select(TopicSubscription.subscriber_id, TopicSubscription.topic).where(
                    TopicSubscription.status != TopicSubscription.UNSUBSCRIBED
                )
            ).all()
        )
        missing = 0
        for (subscriber_id, scope), acks in record.unsubscribes.items():
            topics = TOPICS if scope == marketing.ALL_TOPICS else (scope,)
            if (
                events[(subscriber_id, scope)] < acks
                or suppressions[(hashes[subscriber_id], scope)] < acks
                or any((subscriber_id, t) in still for t in topics)
            ):
                missing += 1
        checks.append(
            Check(
                "every acknowledged unsubscribe is recorded",
                missing == 0,
                f"{sum(record.unsubscribes.values())} acknowledged, {len(record.unsubscribes)} "
                f"links, {missing} without event, suppression or unsubscribed topic",
            )
        )

        exports = Counter(
            db.session.scalars(
                select(Export.user_id).where(Export.user_id.in_(list(record.exports)))
            )
        )
        export_states = Counter(db.session.scalars(select(Export.status)))
        lost = [u for u, n in record.exports.items() if exports[u] < n]
        not_final = sum(export_states[s] for s in Export.IN_PROGRESS) + export_states[Export.FAILED]
        checks.append(
            Check(
                "every acknowledged export exists and is ready",
                not lost and not not_final,
                f"{sum(record.exports.values())} acknowledged; states {dict(export_states)}; "
                f"{len(lost)} accounts missing one",
            )
        )

        request_states = Counter(
            db.session.scalars(
                select(DataRequest.status).where(DataRequest.kind == "delete_account")
            )
        )
        confirmed_ids = list(record.deletions_confirmed.values())
        survivors = db.session.scalar(
            select(func.count()).select_from(User).where(User.id.in_(confirmed_ids))
        )
        stuck = sum(
            request_states[s] for s in (DataRequest.OPEN, DataRequest.WAITING, DataRequest.ERASING)
        )
        checks.append(
            Check(
                "every deletion request is final or waits for the person; confirmed ones erased",
                stuck == 0
                and survivors == 0
                and request_states[DataRequest.DONE] >= len(confirmed_ids),
                f"{len(record.deletions_asked)} asked, {len(confirmed_ids)} confirmed; "
                f"states {dict(request_states)}; {survivors} confirmed accounts still there",
            )
        )

        job_states = Counter(db.session.scalars(select(Job.status)))
        checks.append(
            Check(
                "no job queued, running or failed",
                not (job_states[Job.QUEUED] or job_states[Job.RUNNING] or job_states[Job.FAILED]),
                f"jobs {dict(job_states)}",
            )
        )

        ready = set(
            db.session.scalars(select(Export.file_name).where(Export.status == Export.READY))
        )
        exports_dir = data_dir / "exports"
        archives = {p.name for p in exports_dir.glob("*.zip")} if exports_dir.is_dir() else set()
        temporary = list((exports_dir / "tmp").iterdir()) if (exports_dir / "tmp").is_dir() else []
        keys = set(db.session.scalars(select(GeneratedImage.storage_key))) | set(
            db.session.scalars(select(Upload.storage_key))
        )
        media_dir = Path(app.config["SETTINGS"].media_dir)
        media = {p.relative_to(media_dir).as_posix() for p in media_dir.rglob("*") if p.is_file()}
        orphans = (archives - ready, temporary, media - keys)
        checks.append(
            Check(
                "no orphan files",
                not any(orphans),
                f"{len(orphans[0])} archives without a READY export (of {len(archives)}), "
                f"{len(orphans[1])} temporary files, {len(orphans[2])} media files without "
                f"a row (of {len(media)}); {len(ready - archives)} READY exports without file",
            )
        )
        db.session.remove()
    return checks


def audit_verify(env: dict[str, str]) -> Check:
    done = flask_command(env, "audit", "verify")
    return Check("audit chain verifies", done.returncode == 0, (done.stdout + done.stderr).strip())


# --- the report -------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def report(record: Record, seconds: float, kills: int, checks: list[Check]) -> None:
    print()
    header = f"{'requests':<12} {'count':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}  answers"
    print(header)
    print("-" * len(header))
    everything: list[float] = []
    for kind in sorted(record.latencies):
        values = record.latencies[kind]
        everything += values
        answers = ", ".join(
            f"{status or 'conn'}: {n}"
            for (k, status), n in sorted(record.statuses.items())
            if k == kind
        )
        print(
            f"{kind:<12} {len(values):>7} {len(values) / seconds:>7.1f} "
            f"{percentile(values, 0.5):>8.1f} {percentile(values, 0.99):>8.1f}  {answers}"
        )
    print(
        f"{'all':<12} {len(everything):>7} {len(everything) / seconds:>7.1f} "
        f"{percentile(everything, 0.5):>8.1f} {percentile(everything, 0.99):>8.1f}"
    )
    print(f"operations: {dict(sorted(record.operations.items()))}; worker kills: {kills}")
    if record.unexpected:
        print(f"unexpected answers: {len(record.unexpected)}, e.g.:")
        for line, count in Counter(record.unexpected).most_common(8):
            print(f"  {count} x {line}")
    print()
    for check in checks:
        print(f"[{'pass' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    failed = sum(not c.ok for c in checks)
    print(f"checks: {len(checks) - failed} passed, {failed} failed")


# --- the run ----------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long the traffic runs")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--kill-every", type=float, default=10, help="seconds between kills")
    parser.add_argument("--sweep-every", type=float, default=5, help="seconds between sweeps")
    parser.add_argument("--settle-seconds", type=float, default=120, help="wait for the work")
    parser.add_argument("--export-accounts", type=int, default=30)
    parser.add_argument("--deletion-accounts", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1, help="the traffic's random seed")
    parser.add_argument(
        "--server",
        default=os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create (and drop) a throwaway database on",
    )
    parser.add_argument("--database-url", default="", help="use this database instead (kept)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/11",
        help="a Redis database the soak may empty, for RQ and the rate-limit counters",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the DATA_DIR and the database (printed)"
    )
    return parser.parse_args()


@contextlib.contextmanager
def periodic(every: float, action: Callable[[], None]) -> Iterator[None]:
    """Run `action` every `every` seconds in a thread while the block runs."""
    stopping = threading.Event()
    failures: list[BaseException] = []

    def loop() -> None:
        while not stopping.wait(every):
            try:
                action()
            except Exception as exc:  # reported, and the soak goes on
                failures.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
        for exc in failures[:3]:
            print(f"  periodic {action.__name__} failed: {exc!r}", flush=True)


def main() -> int:  # noqa: PLR0912, PLR0915 -- one run, in order
    args = _arguments()
    from redis import Redis

    from app.config import normalise_database_url
    from tests.support.databases import create_postgres_database, drop_postgres_database
    from tests.support.mailbox import SMTPServer

    server_url = normalise_database_url(args.server)
    database_url = args.database_url or create_postgres_database(server_url)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    Redis.from_url(args.redis_url).flushdb()
    smtp = SMTPServer().start()
    port = free_port()
    secret_key = secrets.token_urlsafe(32)
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "PRIVACY_CENTER_ENV": "development",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "JOBS_MODE": "rq",
        "SECRET_KEY": secret_key,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "DEMO_MODE": "true",
        "DELETION_GRACE_DAYS": "0",
        # All clients come from 127.0.0.1: limits per address would stop a crowd that, in
        # real life, comes from many. The per-account and per-link limits stay as shipped.
        "LOGIN_RATE_LIMIT": "100000 per minute",
        "EMAIL_LINK_RATE_LIMIT": "100000 per minute",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    server = None
    worker = Worker(env, data_dir / "worker.log")
    app = None
    try:
        print(f"preparing {database_url.rpartition('@')[2]} and {data_dir}", flush=True)
        flask(env, "db", "upgrade", timeout=300)
        app = _app(env)
        seeded = seed(
            app,
            export_accounts=args.export_accounts,
            deletion_accounts=args.deletion_accounts,
            subscribers=args.subscribers,
        )
        server = start_gunicorn(env, port, args.workers)
        wait_until_up(port, server)
        worker.start()

        record = Record()
        export_pool: queue.Queue[tuple[int, str, Browser | None]] = queue.Queue()
        for user_id, email in seeded.export_accounts:
            export_pool.put((user_id, email, None))
        deletion_pool: queue.Queue[tuple[int, str]] = queue.Queue()
        for account in seeded.deletion_accounts:
            deletion_pool.put(account)
        traffic = Traffic(
            port,
            record,
            secret_key,
            smtp.mailbox,
            seeded.unsubscribe_links,
            export_pool,
            deletion_pool,
        )

        def kill_and_restart() -> None:
            worker.kill()
            worker.start()

        def sweeper() -> None:
            sweep(env)

        print(
            f"traffic: {args.clients} clients for {args.seconds:.0f} s, worker killed every "
            f"{args.kill_every:.0f} s, sweeper every {args.sweep_every:.0f} s",
            flush=True,
        )
        started = time.monotonic()
        until = started + args.seconds
        clients = [
            threading.Thread(target=traffic.run_client, args=(args.seed * 1000 + n, until))
            for n in range(args.clients)
        ]
        with periodic(args.kill_every, kill_and_restart), periodic(args.sweep_every, sweeper):
            for client in clients:
                client.start()
            for client in clients:
                client.join()
        seconds = time.monotonic() - started
        kills = worker.kills

        # The person's last move: links that arrive shortly after are still followed.
        deadline = time.monotonic() + 30
        while traffic.awaiting and time.monotonic() < deadline:
            if not traffic.confirm_one():
                time.sleep(0.5)
        worker.kill()
        aged = age_abandoned_locks(app)
        print(f"  traffic over; {aged} job(s) or erasure(s) held by a killed worker", flush=True)
        worker.start()
        settle_started = time.monotonic()
        settle_deadline = settle_started + args.settle_seconds
        while True:
            sweep(env)
            left = unfinished(app)
            if not left or time.monotonic() > settle_deadline:
                break
            time.sleep(2)
        print(
            f"  settled in {time.monotonic() - settle_started:.1f} s ({left} still under way)",
            flush=True,
        )
        checks = [
            Check(
                "no request answered 5xx or dropped",
                not any(s >= 500 or s == 0 for (_k, s) in record.statuses),
                f"{sum(n for (_k, s), n in record.statuses.items() if s >= 500 or s == 0)} answers",
            ),
            *check_database(app, record, data_dir),
            audit_verify(env),
        ]
        report(record, seconds, kills, checks)
        if not all(check.ok for check in checks):
            print("\nthe worker's last lines:")
            print("\n".join(worker.log.read_text(errors="replace").splitlines()[-15:]))
            return 1
        return 0
    finally:
        with contextlib.suppress(Exception):
            worker.kill()
        if server is not None:
            stop(server)
        smtp.stop()
        if app is not None:
            from tests.support.databases import dispose_engines

            dispose_engines(app)
        if args.keep:
            print(f"kept {data_dir} and {database_url}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            if not args.database_url:
                drop_postgres_database(database_url, server_url)


if __name__ == "__main__":
    sys.exit(main())
