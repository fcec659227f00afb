"""Flask commands: `flask --app wsgi <group> <command> --help` describes each."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import db
from app.migrations_cli import db_cli  # Alembic itself is imported only when a command runs

demo_cli = AppGroup("demo", help="Demo accounts and realistic platform data (demo mode only).")
jobs_cli = AppGroup("jobs", help="Background work.")
requests_cli = AppGroup("requests", help="Data-subject requests and the sweeper.")
mail_cli = AppGroup("mail", help="Service email.")
audit_cli = AppGroup("audit", help="The tamper-evident audit log.")
notice_cli = AppGroup("notice", help="The privacy notice and its versions.")
marketing_cli = AppGroup("marketing", help="Marketing email: headers for the sending system.")


@demo_cli.command("seed")
@click.option(
    "--heavy",
    type=click.IntRange(min=1),
    default=None,
    help="Also create heavy@example.com with N prompts and N/10 images (for benchmarks).",
)
def demo_seed(heavy: int | None) -> None:
    """Create the demo accounts and their data. Running it again changes nothing."""
    from app.services.demo import seed_demo  # noqa: PLC0415

    if not current_app.config["SETTINGS"].demo_mode:
        raise click.ClickException("demo data is only for demo mode (DEMO_MODE=true)")
    report = seed_demo(heavy=heavy, echo=click.echo)
    click.echo(report)


@jobs_cli.command("work")
@click.option("--burst", is_flag=True, help="Stop when there is no work left instead of waiting.")
def jobs_work(burst: bool) -> None:
    """Run a worker: RQ when REDIS_URL is set, else drain the jobs table."""
    from app.jobs.worker import drain_database_queue, run_rq_worker  # noqa: PLC0415

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["SETTINGS"].redis_url:
        click.echo("RQ worker on the privacy-center queue")
        run_rq_worker(app, burst=burst)
    else:
        click.echo("draining the jobs table (no REDIS_URL set)")
        count = drain_database_queue(app, burst=burst)
        click.echo(f"ran {count} job(s)")


@requests_cli.command("process-due")
def process_due() -> None:
    """The sweeper: run (or re-enqueue on RQ) every job that is due and not done, run the
    account deletions whose cooling-off is over (and resume any that stopped), close
    requests never confirmed, and delete the data exports that have expired."""
    from app.jobs import requeue_due_jobs, run_due_jobs  # noqa: PLC0415
    from app.services.erasure import run_due_erasures  # noqa: PLC0415
    from app.services.exports import expire_due_exports  # noqa: PLC0415
    from app.services.requests import expire_unverified  # noqa: PLC0415

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config["SETTINGS"].jobs_mode == "rq":
        click.echo(f"re-enqueued {requeue_due_jobs(app)} job(s) on RQ")
    else:
        click.echo(f"ran {run_due_jobs()} due job(s)")
    click.echo(f"expired {expire_due_exports()} export(s)")
    click.echo(f"ran {run_due_erasures()} account erasure(s)")
    click.echo(f"expired {expire_unverified()} unconfirmed request(s)")


@mail_cli.command("test")
@click.argument("email")
def mail_test(email: str) -> None:
    """Send a short test message to EMAIL to check the mail settings."""
    from email_validator import EmailNotValidError, validate_email  # noqa: PLC0415

    from app.services.mail import queue_mail  # noqa: PLC0415

    try:
        address = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc)) from None
    queue_mail(to=address, template="mail_test", locale="en")
    db.session.commit()
    click.echo(f"queued a test message to {address}")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check every link of the audit chain; report the first broken one (exit status 1)."""
    from app.services.audit import verify_chain  # noqa: PLC0415

    report = verify_chain()
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} event(s) checked")
        return
    raise click.ClickException(
        f"audit chain broken at event {report.first_broken_id}: {report.problem} "
        f"({report.checked} event(s) before it are intact)"
    )


@notice_cli.command("fingerprint")
def notice_fingerprint() -> None:
    """Print the data map's fingerprint, and whether the current notice version matches it."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from app.services.notice import (  # noqa: PLC0415
        datamap_fingerprint,
        get_notice,
        version_entry_for,
    )

    fingerprint = datamap_fingerprint()
    notice = get_notice()
    click.echo(fingerprint)
    if notice.current.fingerprint == fingerprint:
        click.echo(f"notice version {notice.current.version} matches the data map", err=True)
        return
    click.echo(
        f"notice version {notice.current.version} was published with another data map: add "
        "this at the end of `versions:` in app/datamap/notice.yaml (or, if that version is not "
        "published yet, put the fingerprint above in it):\n\n"
        + version_entry_for(notice, fingerprint, datetime.now(UTC).date()),
        err=True,
    )


@marketing_cli.command("headers")
@click.argument("email")
@click.option("--topic", default=None, help="The message's topic (default: all marketing).")
def marketing_headers(email: str, topic: str | None) -> None:
    """Print the List-Unsubscribe and List-Unsubscribe-Post headers for a message to EMAIL."""
    from app.services import marketing  # noqa: PLC0415

    if topic is not None and topic not in marketing.topics():
        known = ", ".join(marketing.topics())
        raise click.BadParameter(f"unknown topic {topic!r} (known: {known})", param_hint="--topic")
    try:
        headers = marketing.list_unsubscribe_headers(email, topic)
    except marketing.UnknownAddressError:
        raise click.ClickException(
            f"{email} is not on the mailing list: no marketing email may be sent to it"
        ) from None
    for name, value in headers.items():
        click.echo(f"{name}: {value}")


@click.command("check-deploy")
def check_deploy() -> None:
    """List the settings that are unsafe in production; exit status 1 when there is any.

    Reads the environment as the app would, without building the app, so it also explains a
    production start-up that is refused. (Also a `flask.commands` plugin: it runs even when
    `--app wsgi` cannot load.)"""
    from app.config import ConfigError, load_settings  # noqa: PLC0415

    try:
        settings = load_settings(refuse_unsafe=False)
    except ConfigError as exc:
        problems = [str(exc)]
    else:
        problems = [
            f"{problem} (production refuses to start)"
            for problem in settings.problems_for_production()
        ] + settings.deployment_risks()
    if not problems:
        click.echo("no problems found")
        return
    click.echo(f"{len(problems)} problem(s) for production:")
    for problem in problems:
        click.echo(f"- {problem}")
    raise SystemExit(1)


def register(app: Flask) -> None:
    for group in (
        db_cli,
        demo_cli,
        jobs_cli,
        requests_cli,
        mail_cli,
        audit_cli,
        notice_cli,
        marketing_cli,
    ):
        app.cli.add_command(group)
    app.cli.add_command(check_deploy)
