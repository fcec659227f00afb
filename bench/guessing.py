"""Does an answer take longer when the address has an account? Prints the medians.

Sign-in with a wrong password for a real account against an address nobody has, and a
deletion request by email for both: each timed through the app (test client, SQLite in a
throwaway folder), alternating so that drift hits both sides alike.

    .venv/bin/python bench/guessing.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from heavy import bench_app

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = CSRF.search(page) or re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no form on {path}"
    return match.group(1)


def _timed_post(client, path: str, data: dict[str, str]) -> float:
    data = {**data, "csrf_token": _token(client, path)}
    started = time.perf_counter()
    response = client.post(path, data=data)
    elapsed = time.perf_counter() - started
    assert response.status_code < 500, response.status_code
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="bench-guessing-") as folder:
        data_dir = Path(folder)
        app = bench_app(data_dir, f"sqlite:///{data_dir / 'bench.sqlite3'}")
        with app.app_context():
            from app.migrations_cli import upgrade_database
            from app.services.demo import seed_demo

            upgrade_database()
            seed_demo(echo=lambda _line: None)
        client = app.test_client()
        cases = {
            "sign-in": ("/login", "demo@example.com", "nobody@example.com", "password"),
            "request by email": (
                "/requests/new/delete_account",
                "demo@example.com",
                "nobody@example.org",
                None,
            ),
        }
        print(f"{rounds} rounds each, median and p90 in ms (SQLite, in-process)")
        header = ("known p50", 10), ("unknown p50", 13), ("known p90", 11), ("unknown p90", 13)
        print(f"{'form':<18}" + "".join(f"{title:>{width}}" for title, width in header))
        for name, (path, known, unknown, password_field) in cases.items():
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            for n in range(rounds + 2):
                for side, address in (("known", known), ("unknown", unknown)):
                    data = {"email": address}
                    if password_field:
                        data[password_field] = "not-the-password"
                    elapsed = _timed_post(client, path, data)
                    if n >= 2:  # the first rounds warm caches up
                        times[side].append(elapsed)
            p50 = {side: statistics.median(values) for side, values in times.items()}
            p90 = {side: statistics.quantiles(values, n=10)[-1] for side, values in times.items()}
            print(
                f"{name:<18}{p50['known']:>10.1f}{p50['unknown']:>13.1f}"
                f"{p90['known']:>11.1f}{p90['unknown']:>13.1f}"
            )


if __name__ == "__main__":
    main()
