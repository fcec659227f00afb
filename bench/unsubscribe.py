"""RFC 8058 one-click unsubscribes for many distinct subscribers, beside /healthz, on PostgreSQL.

    .venv/bin/python bench/unsubscribe.py                       # 10 000 subscribers, 4 clients
    .venv/bin/python bench/unsubscribe.py --subscribers 2000 --clients 8
    .venv/bin/python bench/unsubscribe.py --server postgresql://postgres@db:5432/postgres
    .venv/bin/python bench/unsubscribe.py --database-url postgresql://postgres@127.0.0.1/pc_bench
    .venv/bin/python bench/unsubscribe.py --redis-url redis://127.0.0.1:6379/15  # limits in Redis

Creates a throwaway database on the PostgreSQL server (`--server`, default TEST_DATABASE_URL or
postgres@127.0.0.1:5432) and drops it afterwards, or uses `--database-url` as it is (kept: use
a throwaway one, the schema and the subscribers are added to it). Then:

1. migrates it (`flask db upgrade`) and bulk-inserts the subscribers, newsletter-only readers
   subscribed to two topics each (plus a few more for the warm-up), and computes one
   unsubscribe link per subscriber for the "newsletter" topic;
2. serves the app with gunicorn (2 sync workers by default) on a free local port;
3. sends the same number of `GET /healthz` (the floor: one trivial query, no session) and of
   one-click POSTs (`List-Unsubscribe=One-Click`, no cookie), each subscriber's link once,
   from a few client threads on keep-alive connections, and reports requests/s, p50 and p99;
4. counts what the database recorded: every POST must have left one MarketingEvent and one
   SuppressionEntry, and every subscriber's newsletter must be unsubscribed (the run fails if
   not).

Nothing here asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving import Result, flask, free_port, start_gunicorn, stop, wait_until_up

PROJECT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(PROJECT))
TOPICS = ("newsletter", "offers")
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
BATCH = 5000


# --- the database -----------------------------------------------------------------------------


def _app(env: dict[str, str]) -> Any:
    """The app in this process, configured like gunicorn's (same keys, same database)."""
    os.environ.update(env)
    from app import create_app

    return create_app({"rate_limits": False})


def add_subscribers(app: Any, count: int) -> list[str]:
    """`count` newsletter-only subscribers, bulk-inserted; their unsubscribe paths."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import MarketingSubscriber, TopicSubscription
    from app.services import marketing

    started = time.perf_counter()
    now = datetime.now(UTC)
    with app.app_context():
        key = app.config["SETTINGS"].suppression_key
        for first in range(0, count, BATCH):
            emails = [f"reader{n}@example.org" for n in range(first, min(count, first + BATCH))]
            db.session.execute(
                insert(MarketingSubscriber),
                [
                    {
                        "email": email,
                        "email_hash": marketing.email_hash(email, key),
                        "locale": "en",
                        "created_at": now,
                    }
                    for email in emails
                ],
            )
        ids = list(
            db.session.scalars(
                select(MarketingSubscriber.id)
                .where(MarketingSubscriber.created_at == now)  # ours, in a reused database
                .order_by(MarketingSubscriber.id)
            )
        )
        for first in range(0, len(ids), BATCH):
            db.session.execute(
                insert(TopicSubscription),
                [
                    {
                        "subscriber_id": subscriber_id,
                        "topic": topic,
                        "status": TopicSubscription.SUBSCRIBED,
                        "requested_at": now,
                        "confirmed_at": now,
                        "updated_at": now,
                    }
                    for subscriber_id in ids[first : first + BATCH]
                    for topic in TOPICS
                ],
            )
        db.session.commit()
        paths = [f"/unsubscribe/{marketing.unsubscribe_token(i, 'newsletter')}" for i in ids]
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
        db.session.remove()
    print(
        f"  {count} subscribers, {count * len(TOPICS)} topic rows: "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return paths


def recorded(app: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import MarketingEvent, SuppressionEntry, TopicSubscription

    with app.app_context():
        counts = {
            "one-click events": db.session.scalar(
                select(func.count())
                .select_from(MarketingEvent)
                .where(MarketingEvent.source == "one_click")
            ),
            "suppression entries": db.session.scalar(
                select(func.count())
                .select_from(SuppressionEntry)
                .where(SuppressionEntry.reason == "one_click")
            ),
            "newsletters unsubscribed": db.session.scalar(
                select(func.count())
                .select_from(TopicSubscription)
                .where(
                    TopicSubscription.topic == "newsletter",
                    TopicSubscription.status == TopicSubscription.UNSUBSCRIBED,
                )
            ),
            "other topics still subscribed": db.session.scalar(
                select(func.count())
                .select_from(TopicSubscription)
                .where(
                    TopicSubscription.topic != "newsletter",
                    TopicSubscription.status == TopicSubscription.SUBSCRIBED,
                )
            ),
        }
        db.session.remove()
    return {name: int(value or 0) for name, value in counts.items()}


# --- the server -------------------------------------------------------------------------------


# --- HTTP -------------------------------------------------------------------------------------


def one_click(connection: http.client.HTTPConnection, path: str) -> str | None:
    """What a mail provider sends; the problem, if the answer is not the expected 200."""
    connection.request(
        "POST",
        path,
        body=ONE_CLICK_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = connection.getresponse()
    body = response.read()
    if (
        response.status != 200
        or body.strip() != b"Unsubscribed."
        or response.getheader("Set-Cookie")
    ):
        return f"POST {path[:40]}…: HTTP {response.status} {body[:60]!r}"
    return None


def healthz(connection: http.client.HTTPConnection, path: str) -> str | None:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return None if response.status == 200 else f"GET {path}: HTTP {response.status}"


def measure(port: int, name: str, send: Any, paths: list[str], clients: int) -> Result:
    """Every path once, spread over `clients` threads, each on its own keep-alive connection."""

    def run(share: list[str], latencies: list[float], errors: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for path in share:
            started = time.perf_counter()
            problem = send(connection, path)
            latencies.append((time.perf_counter() - started) * 1000)
            if problem:
                errors.append(problem)
        connection.close()

    latencies: list[float] = []
    errors: list[str] = []
    workers = [
        threading.Thread(target=run, args=(paths[n::clients], latencies, errors))
        for n in range(clients)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed request(s), e.g. {errors[0]}")
    return Result(name, len(paths), seconds, latencies)


def report(results: list[Result], title: str) -> None:
    floor = results[0]
    print()
    print(title)
    header = (
        f"{'target':<34} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'req/s vs healthz':>17}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        print(
            f"{result.name:<34} {result.requests:>9} {result.per_second:>8.0f} "
            f"{result.percentile(0.50):>8.1f} {result.percentile(0.99):>8.1f} "
            f"{result.per_second / floor.per_second:>17.2f}"
        )


# --- the run ----------------------------------------------------------------------------------


def _out_of_time(signum: int, frame: object) -> None:
    raise TimeoutError("the benchmark ran longer than --max-seconds")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000, help="one-click POSTs timed")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests of each kind")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--server",
        default=os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create (and drop) a throwaway database on",
    )
    parser.add_argument("--database-url", default="", help="use this database instead (it is kept)")
    parser.add_argument(
        "--redis-url",
        default="",
        help="rate-limit counters in this Redis database, as at scale (default: in memory)",
    )
    parser.add_argument(
        "--max-seconds", type=int, default=1800, help="give up (and clean up) after this long"
    )
    args = parser.parse_args()
    if args.subscribers < 1 or args.clients < 1 or args.workers < 1:
        parser.error("--subscribers, --clients and --workers must be at least 1")
    return args


def main() -> int:
    args = _arguments()
    from app.config import normalise_database_url
    from tests.support.databases import create_postgres_database, drop_postgres_database

    server_url = normalise_database_url(args.server)
    database_url = args.database_url or create_postgres_database(server_url)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-unsubscribe-"))
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "PRIVACY_CENTER_ENV": "development",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "SUPPRESSION_HASH_KEY": secrets.token_urlsafe(32),
        "DEMO_MODE": "false",
        "JOBS_MODE": "thread",
        "PYTHONUNBUFFERED": "1",
    }
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url  # only the limiter uses it: JOBS_MODE stays thread
    server: subprocess.Popen[bytes] | None = None
    app = None
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(args.max_seconds)
    try:
        print(f"preparing {database_url.rpartition('@')[2]}", flush=True)
        flask(env, "db", "upgrade", timeout=300)
        app = _app(env)
        paths = add_subscribers(app, args.subscribers + args.warmup)
        warmup, timed = paths[: args.warmup], paths[args.warmup :]
        port = free_port()
        server = start_gunicorn(env, port, args.workers)
        wait_until_up(port, server)

        measure(port, "warm-up", healthz, ["/healthz"] * args.warmup, args.clients)
        measure(port, "warm-up", one_click, warmup, args.clients)
        results = [
            measure(port, "GET /healthz", healthz, ["/healthz"] * len(timed), args.clients),
            measure(port, "POST one-click (distinct links)", one_click, timed, args.clients),
        ]
        limiter = "Redis" if args.redis_url else "in-memory"
        report(
            results,
            f"PostgreSQL, gunicorn {args.workers} sync workers, {args.clients} client threads, "
            f"{len(timed)} requests per target, {limiter} rate-limit counters",
        )
        counts = recorded(app)
        print()
        for name, value in counts.items():
            print(f"{name:<30} {value:>9}")
        expected = len(paths)
        ok = (
            counts["one-click events"] == expected
            and counts["suppression entries"] == expected
            and counts["newsletters unsubscribed"] == expected
            and counts["other topics still subscribed"] == expected
        )
        print(
            f"every one of the {expected} POSTs (timed and warm-up) recorded: "
            f"{'yes' if ok else 'NO'}"
        )
        return 0 if ok else 1
    finally:
        signal.alarm(0)
        if server is not None:
            stop(server)
        if app is not None:
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()
        if not args.database_url:
            drop_postgres_database(database_url, server_url)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
