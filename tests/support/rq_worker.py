"""Running a real RQ worker in a test, configured from the environment as `jobs work` is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry

from app.jobs import worker
from tests.support.databases import dispose_engines
from tests.support.environment import clear_settings_env


@contextmanager
def worker_environment(
    app: Flask, monkeypatch: object, redis_url: str, **env: str
) -> Iterator[None]:
    """The environment a production worker builds its app from, pointing at `app`'s database
    and data folder (plus `env`); the worker's app is built afresh inside and disposed after."""
    settings = app.config["SETTINGS"]
    clear_settings_env(monkeypatch)
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "REDIS_URL": redis_url,
        "RATE_LIMITS": "false",
        **env,
    }.items():
        monkeypatch.setenv(name, value)  # type: ignore[attr-defined]
    worker._worker_app.cache_clear()
    try:
        yield
    finally:
        if worker._worker_app.cache_info().currsize:
            dispose_engines(worker._worker_app())
        worker._worker_app.cache_clear()


def run_rq_worker_burst(
    app: Flask, monkeypatch: object, redis_url: str, queue: Queue, **env: str
) -> None:
    """Drain `queue` with a SimpleWorker whose app is built from the environment (plus `env`),
    as a production worker's is; fails if any job ended in the failed registry."""
    connection: Redis = queue.connection
    with worker_environment(app, monkeypatch, redis_url, **env):
        rq_worker = SimpleWorker([queue], connection=connection)
        assert rq_worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    assert FailedJobRegistry(queue=queue).count == 0
