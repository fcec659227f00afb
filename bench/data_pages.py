"""Throughput and latency of the "your data" pages for a person with a lot of data.

    .venv/bin/python bench/data_pages.py                      # SQLite, heavy N=50000
    .venv/bin/python bench/data_pages.py --heavy 5000 --requests 200
    .venv/bin/python bench/data_pages.py --database-url postgresql://postgres@127.0.0.1/pc_bench

Builds a throwaway DATA_DIR, migrates it (or the given database: use a throwaway one, the
schema and the demo accounts are added to it), seeds `demo seed --heavy N`, serves the app
with gunicorn (2 workers) on a free local port, signs in as heavy@example.com through the
real form, then measures each target with the same number of requests from a few threads on
keep-alive connections:

- `/healthz` (the floor: one trivial query, no session),
- `/data` (one card per category, counts from one aggregate query),
- `/data/prompts` (the first page of the newest 50 prompts),
- the hundredth page of `/data/prompts` (its URL found by following "Load more" 99 times).

It prints requests/s, p50 and p99 latency, and each target's ratio to /healthz measured in the
same run, so the figures compare across machines. Nothing here asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import html
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from serving import Result, flask, free_port, start_gunicorn, stop, wait_until_up

PROJECT = Path(__file__).resolve().parent.parent

HEAVY_EMAIL = "heavy@example.com"
HEAVY_PASSWORD = "demo-password"  # the published demo password (DESIGN §5)
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
NEXT_PAGE = re.compile(r'id="load-more-link" href="([^"]+)"')


# --- the server -------------------------------------------------------------------------------


def analyze(database_url: str) -> None:
    """Planner statistics for the freshly bulk-loaded tables, as autovacuum would gather
    them on a live server; without them PostgreSQL plans for nearly empty tables."""
    sys.path.insert(0, str(PROJECT))
    from sqlalchemy import create_engine

    from app.config import normalise_database_url

    engine = create_engine(normalise_database_url(database_url))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


# --- HTTP -------------------------------------------------------------------------------------


def get(
    connection: http.client.HTTPConnection, path: str, cookie: str = ""
) -> tuple[int, bytes, http.client.HTTPMessage]:
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    return response.status, response.read(), response.headers


def sign_in(port: int) -> str:
    """Through the real form: the CSRF token and session cookie of GET /login, then POST."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, body, headers = get(connection, "/login")
    assert status == 200, f"GET /login answered {status}"
    token = CSRF.search(body.decode())
    assert token, "no CSRF token on the sign-in page"
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    form = urlencode({"email": HEAVY_EMAIL, "password": HEAVY_PASSWORD, "csrf_token": token[1]})
    connection.request(
        "POST",
        "/login",
        body=form,
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    response = connection.getresponse()
    response.read()
    assert response.status == 303, f"sign-in answered {response.status}"
    connection.close()
    return response.headers["Set-Cookie"].split(";", 1)[0]


def hundredth_page(port: int, cookie: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = "/data/prompts"
    for _ in range(99):
        status, body, _headers = get(connection, path, cookie)
        assert status == 200, f"{path} answered {status}"
        found = NEXT_PAGE.search(body.decode())
        assert found, f"no 'Load more' link on {path}: fewer than 100 pages of prompts?"
        path = html.unescape(found[1])
    connection.close()
    return path


def measure(
    port: int, name: str, path: str, cookie: str, *, requests: int, warmup: int, threads: int
) -> Result:
    """`requests` timed GETs spread over `threads` threads, each on its own connection."""

    def run(count: int, latencies: list[float], errors: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(count):
            started = time.perf_counter()
            status, body, _headers = get(connection, path, cookie)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200 or (path != "/healthz" and b"<h1" not in body):
                errors.append(f"{path}: HTTP {status}")
        connection.close()

    def in_threads(total: int) -> tuple[float, list[float]]:
        latencies: list[float] = []
        errors: list[str] = []
        shares = [total // threads + (i < total % threads) for i in range(threads)]
        workers = [threading.Thread(target=run, args=(n, latencies, errors)) for n in shares]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise RuntimeError(f"{len(errors)} failed request(s), e.g. {errors[0]}")
        return time.perf_counter() - started, latencies

    in_threads(warmup)
    seconds, latencies = in_threads(requests)
    return Result(name, requests, seconds, latencies)


# --- the report -------------------------------------------------------------------------------


def report(results: list[Result], title: str) -> None:
    floor = results[0]
    print()
    print(title)
    header = (
        f"{'target':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'req/s vs healthz':>17} {'p50 vs healthz':>15}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        p50 = result.percentile(0.50)
        print(
            f"{result.name:<28} {result.per_second:>8.0f} {p50:>8.1f} "
            f"{result.percentile(0.99):>8.1f} "
            f"{result.per_second / floor.per_second:>17.2f} "
            f"{p50 / floor.percentile(0.50):>15.1f}"
        )


def _out_of_time(signum: int, frame: object) -> None:
    raise TimeoutError("the benchmark ran longer than --max-seconds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heavy", type=int, default=50000, help="prompts for heavy@example.com")
    parser.add_argument("--database-url", default="", help="a throwaway database (default SQLite)")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per target")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per target")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--keep", action="store_true", help="keep the DATA_DIR (path printed)")
    parser.add_argument(
        "--max-seconds", type=int, default=3600, help="give up (and clean up) after this long"
    )
    args = parser.parse_args()
    if args.heavy < 5000:
        parser.error("--heavy must be at least 5000 for a hundredth page of 50 prompts")

    data_dir = Path(tempfile.mkdtemp(prefix="bench-data-pages-"))
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "PRIVACY_CENTER_ENV": "development",
        "DATA_DIR": str(data_dir),
        "DEMO_MODE": "true",
        "JOBS_MODE": "thread",
        "PYTHONUNBUFFERED": "1",
    }
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    backend = "PostgreSQL" if args.database_url else "SQLite"
    server: subprocess.Popen[bytes] | None = None
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(args.max_seconds)
    try:
        print(f"preparing {backend} in {data_dir}", flush=True)
        flask(env, "db", "upgrade", timeout=300)
        flask(env, "demo", "seed", "--heavy", str(args.heavy), timeout=1800)
        if args.database_url:
            analyze(args.database_url)
        port = free_port()
        server = start_gunicorn(env, port, args.workers)
        wait_until_up(port, server)
        cookie = sign_in(port)
        targets = [
            ("/healthz", "/healthz"),
            ("/data", "/data"),
            ("/data/prompts (page 1)", "/data/prompts"),
            ("/data/prompts (page 100)", hundredth_page(port, cookie)),
        ]
        results = []
        for name, path in targets:
            results.append(
                measure(
                    port,
                    name,
                    path,
                    cookie if path != "/healthz" else "",
                    requests=args.requests,
                    warmup=args.warmup,
                    threads=args.threads,
                )
            )
            print(f"  measured {name}", flush=True)
        report(
            results,
            f"{backend}, heavy N={args.heavy}, gunicorn {args.workers} sync workers, "
            f"{args.threads} client threads, {args.requests} requests per target",
        )
    finally:
        signal.alarm(0)
        if server is not None:
            stop(server)
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
