"""Erasing an account, category by category, as the data map says.

An erasure is a fixed list of steps. Each runs in its own transaction together with the
row in `erasure_steps` that says it is done, so a crash at any point leaves whole steps
behind it, and running the erasure again (the sweeper does) skips them and goes on. The
first step makes the account unusable (no password works, every session ends), so however
far an interrupted erasure got, nobody can sign in to what is left of it.

The steps:
1. `lock_out`: the password can no longer match, sessions end; the address the last email
   goes to is put on the request, and the pseudonym retained records will carry is chosen;
2. `exports`: export archives are deleted from disk;
3. `suppress`: the address goes on the marketing do-not-email list, as a keyed hash;
4. `category:<key>` for every category in the database, the ones that point at others
   first: `delete` removes the rows (and queues their files for removal, in the same
   transaction), `anonymize` clears the named fields and the link to the account, `retain`
   does the same and stamps the pseudonym and the end of the legal hold;
5. `address`: what was kept under the address rather than the account (messages, requests
   made by email, a marketing subscription never linked to the account);
6. `category:account`: the account itself;
7. `finish`: the email saying what was deleted and what is kept and why, then the request
   is closed and keeps no address.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from app.datamap import Category, get_datamap
from app.extensions import db
from app.models import (
    DataRequest,
    ErasureStep,
    MarketingSubscriber,
    OutboundMail,
    User,
    utcnow,
)
from app.services import marketing
from app.services import requests as request_service
from app.services.deletion import queue_file_removal
from app.services.exports import delete_user_exports

log = logging.getLogger(__name__)

BATCH_SIZE = 500
STALE_AFTER = timedelta(minutes=10)  # an erasure holding its lock longer than this died
UNUSABLE_PASSWORD_HASH = "!erased"  # noqa: S105 -- not an Argon2 hash: nothing matches it
ACCOUNT_KEY = "account"


@dataclass(frozen=True)
class KeptCategory:
    category: Category
    until: str  # the data map's retention text


@dataclass(frozen=True)
class ErasurePlan:
    """What erasing an account does, for the confirmation page and the last email."""

    deleted: tuple[Category, ...]
    anonymized: tuple[Category, ...]
    retained: tuple[KeptCategory, ...]
    in_browser: tuple[Category, ...]
    open_exports: int = 0


def erasure_plan(user_id: int | None = None) -> ErasurePlan:
    """The data map's erasure rules, grouped; with the person's exports still available."""
    from app.models import Export  # noqa: PLC0415

    datamap = get_datamap()
    by_rule: dict[str, list[Category]] = {}
    for category in datamap.categories:
        by_rule.setdefault(category.erasure.rule, []).append(category)
    open_exports = 0
    if user_id is not None:
        open_exports = (
            db.session.scalar(
                select(func.count()).where(
                    Export.user_id == user_id, Export.status != Export.EXPIRED
                )
            )
            or 0
        )
    return ErasurePlan(
        deleted=tuple(by_rule.get("delete", ())),
        anonymized=tuple(by_rule.get("anonymize", ())),
        retained=tuple(KeptCategory(c, c.retention.text) for c in by_rule.get("retain", ())),
        in_browser=tuple(by_rule.get("browser", ())),
        open_exports=open_exports,
    )


def ordered_categories() -> list[Category]:
    """Database categories in the order they can be erased: a table that points at another
    comes before it, and the account comes last."""
    tables = [table.name for table in reversed(db.metadata.sorted_tables)]
    categories = [c for c in get_datamap().database_categories if c.key != ACCOUNT_KEY]
    return sorted(categories, key=lambda c: tables.index(c.model.__table__.name))


def step_names() -> list[str]:
    return [
        "lock_out",
        "exports",
        "suppress",
        *(f"category:{c.key}" for c in ordered_categories()),
        "address",
        f"category:{ACCOUNT_KEY}",
        "finish",
    ]


# --- running ----------------------------------------------------------------------------------


def _claim(request_id: int, now: datetime) -> bool:
    """Take the erasure: a due deletion starts, or a stopped one (lock older than
    STALE_AFTER, or released after a failure) resumes. Atomic, so of two sweepers or of a
    sweeper and a job, exactly one runs it."""
    due = (DataRequest.status == DataRequest.WAITING) & (DataRequest.cooling_off_until <= now)
    stopped = (DataRequest.status == DataRequest.ERASING) & (
        DataRequest.erasure_locked_at.is_(None)
        | (DataRequest.erasure_locked_at < now - STALE_AFTER)
    )
    result = db.session.execute(
        update(DataRequest)
        .where(DataRequest.id == request_id, DataRequest.kind == "delete_account", due | stopped)
        .values(status=DataRequest.ERASING, erasure_locked_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def run_erasure(
    request_id: int,
    *,
    now: datetime | None = None,
    after_step: Callable[[str], None] | None = None,
) -> bool:
    """Run (or resume) the erasure of a deletion request that is due. Returns False when it
    is not due or someone else is running it. `after_step` is called after each committed
    step (the crash-safety tests stop the run there)."""
    now = now or utcnow()
    if not _claim(request_id, now):
        return False
    data_request = db.session.get(DataRequest, request_id)
    assert data_request is not None
    try:
        done = set(
            db.session.scalars(select(ErasureStep.step).where(ErasureStep.request_id == request_id))
        )
        if not done:
            request_service.record_progress(data_request, "erasure_started")
            db.session.commit()
        for step in step_names():
            if step in done:
                continue
            counts = _run_step(data_request, step)
            db.session.add(ErasureStep(request_id=request_id, step=step, counts=counts))
            if step != "finish":
                data_request.erasure_locked_at = utcnow()  # still alive
            db.session.commit()
            if after_step is not None:
                after_step(step)
    except IntegrityError:
        # Another runner recorded the same step: it holds the erasure now.
        db.session.rollback()
        return False
    except Exception:
        db.session.rollback()
        _release(request_id)
        raise
    return True


def _release(request_id: int) -> None:
    """After a failure: let the next sweep resume at once instead of waiting out the lock."""
    db.session.execute(
        update(DataRequest)
        .where(DataRequest.id == request_id, DataRequest.status == DataRequest.ERASING)
        .values(erasure_locked_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def run_due_erasures(now: datetime | None = None) -> int:
    """The sweeper's part: run every deletion that is due or stopped midway. A failing one
    is logged and left for the next sweep; the others still run."""
    count = 0
    for request_id in request_service.due_erasure_ids(now):
        try:
            if run_erasure(request_id, now=now):
                count += 1
        except Exception:
            log.exception("erasure of request %s stopped; the next sweep resumes it", request_id)
    return count


# --- the steps --------------------------------------------------------------------------------


def _run_step(data_request: DataRequest, step: str) -> dict[str, Any]:
    fixed = {
        "lock_out": _lock_out,
        "exports": _delete_exports,
        "suppress": _suppress,
        "address": _erase_address_traces,
        "finish": _finish,
    }
    if step in fixed:
        return fixed[step](data_request)
    key = step.removeprefix("category:")
    category = get_datamap().get(key)
    if category is None or data_request.user_id is None:
        return {}  # a category removed from the data map since the erasure began
    if key == ACCOUNT_KEY:
        return _erase_account(data_request)
    return {key: _erase_category(category, data_request)}


def _delete_exports(data_request: DataRequest) -> dict[str, Any]:
    if data_request.user_id is None:
        return {}
    return {"exports": delete_user_exports(data_request.user_id)}


def _lock_out(data_request: DataRequest) -> dict[str, Any]:
    user = db.session.get(User, data_request.user_id) if data_request.user_id else None
    if user is None:
        return {}
    user.password_hash = UNUSABLE_PASSWORD_HASH
    user.session_version += 1
    data_request.email = user.email
    data_request.email_hash = marketing.email_hash(user.email)
    data_request.locale = user.locale or data_request.locale
    data_request.retained_as = data_request.retained_as or f"erased-{secrets.token_hex(12)}"
    return {"sessions_ended": 1}


def _suppress(data_request: DataRequest) -> dict[str, Any]:
    addresses = {data_request.email} if data_request.email else set()
    if data_request.user_id is not None:
        subscriber = marketing.subscriber_for_user(data_request.user_id)
        if subscriber is not None:
            addresses.add(subscriber.email)
    added = sum(marketing.suppress_address(a, reason="erasure") for a in addresses if a)
    return {"suppressed": added}


def _user_rows(category: Category, user_id: int, extra: Any = None) -> Any:
    column = getattr(category.model, category.user_column)
    query = select(category.model.id).where(column == user_id)
    return query if extra is None else query.where(extra)


def _batches(query: Any) -> Iterator[list[int]]:
    """Ids in batches; each batch is changed before the next is read, so the query always
    returns rows not yet done (they no longer match it)."""
    while True:
        ids = list(db.session.scalars(query.limit(BATCH_SIZE)))
        if not ids:
            return
        yield ids


def _erase_category(category: Category, data_request: DataRequest) -> int:
    user_id = data_request.user_id
    assert user_id is not None
    model = category.model
    extra = None
    if model is DataRequest:
        extra = DataRequest.id != data_request.id  # this one is closed by the last step
        _close_other_requests(data_request)
    rule = category.erasure.rule
    total = 0
    for ids in _batches(_user_rows(category, user_id, extra)):
        if rule == "delete":
            total += _delete_rows(category, ids)
        else:
            total += _keep_rows(category, ids, data_request, retain=rule == "retain")
        db.session.flush()
    return total


def _close_other_requests(data_request: DataRequest) -> None:
    """Requests of the account still under way end with it: there is nobody left to answer."""
    db.session.execute(
        update(DataRequest)
        .where(
            DataRequest.user_id == data_request.user_id,
            DataRequest.id != data_request.id,
            DataRequest.status.in_(DataRequest.ACTIVE),
        )
        .values(status=DataRequest.CANCELLED, completed_at=utcnow(), verify_nonce_hash=None)
        .execution_options(synchronize_session=False)
    )


def _delete_rows(category: Category, ids: list[int]) -> int:
    model = category.model
    statement = delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
    if category.file_column:
        keys = [
            key
            for (key,) in db.session.execute(
                statement.returning(getattr(model, category.file_column))
            )
        ]
        queue_file_removal([key for key in keys if key])
        return len(keys)
    return db.session.execute(statement).rowcount  # type: ignore[attr-defined]


def _keep_rows(
    category: Category, ids: list[int], data_request: DataRequest, *, retain: bool
) -> int:
    """Anonymize (or retain under the pseudonym) these rows: the account link and the
    named fields are cleared; a retained row's legal hold ends `years` after the end of
    the year of its time column."""
    model = category.model
    cleared = {category.user_column: None, **dict.fromkeys(category.erasure.anonymize)}
    if not retain:
        db.session.execute(
            update(model)
            .where(model.id.in_(ids))
            .values(**cleared)
            .execution_options(synchronize_session=False)
        )
        return len(ids)
    years = category.retention.years or 0
    time_column = getattr(model, category.time_column) if category.time_column else None
    columns = [model.id, time_column] if time_column is not None else [model.id]
    for row in db.session.execute(select(*columns).where(model.id.in_(ids))):
        moment = row[1] if time_column is not None and row[1] else utcnow()
        db.session.execute(
            update(model)
            .where(model.id == row[0])
            .values(
                **cleared,
                retained_as=data_request.retained_as,
                retain_until=_end_of_hold(moment, years),
            )
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def _end_of_hold(moment: datetime, years: int) -> datetime:
    """The end of the year `years` after the year of `moment` (tax law counts that way)."""
    return datetime(moment.year + years + 1, 1, 1, tzinfo=UTC)


def _erase_address_traces(data_request: DataRequest) -> dict[str, Any]:
    """What was kept under the address rather than the account."""
    address = data_request.email
    if not address:
        return {}
    lowered = address.lower()
    mails = db.session.execute(
        delete(OutboundMail)
        .where(func.lower(OutboundMail.to_address) == lowered)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    subscribers = erase_address_marketing(address)
    hash_value = marketing.email_hash(address)
    others = (DataRequest.email_hash == hash_value) & (DataRequest.id != data_request.id)
    # Requests made by email and still under way end too: without the address nobody can
    # be answered, and an old confirmation link must not bring one back.
    db.session.execute(
        update(DataRequest)
        .where(others, DataRequest.status.in_(DataRequest.ACTIVE))
        .values(status=DataRequest.CANCELLED, completed_at=utcnow(), verify_nonce_hash=None)
        .execution_options(synchronize_session=False)
    )
    requests = db.session.execute(
        update(DataRequest)
        .where(others)
        .values(
            email=None,
            details=None,
            user_id=None,
            retained_as=data_request.retained_as,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return {"emails": mails, "marketing_address": subscribers, "privacy_requests": requests}


def erase_address_marketing(address: str) -> int:
    """Delete the marketing subscriber of an address (its topics and history go with it)
    and keep the address only as a hash on the do-not-email list; the caller commits."""
    marketing.suppress_address(address, reason="erasure")
    subscriber = marketing.find_subscriber(address)
    if subscriber is None:
        return 0
    from app.models import MarketingEvent, TopicSubscription  # noqa: PLC0415

    for model in (MarketingEvent, TopicSubscription):
        db.session.execute(
            delete(model)
            .where(model.subscriber_id == subscriber.id)
            .execution_options(synchronize_session=False)
        )
    db.session.execute(
        delete(MarketingSubscriber)
        .where(MarketingSubscriber.id == subscriber.id)
        .execution_options(synchronize_session=False)
    )
    return 1


def _erase_account(data_request: DataRequest) -> dict[str, Any]:
    user_id = data_request.user_id
    db.session.execute(
        update(DataRequest)
        .where(DataRequest.user_id == user_id)
        .values(user_id=None)
        .execution_options(synchronize_session=False)
    )
    removed = db.session.execute(
        delete(User).where(User.id == user_id).execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    db.session.refresh(data_request)
    return {ACCOUNT_KEY: removed}


def _finish(data_request: DataRequest) -> dict[str, Any]:
    if data_request.email:
        request_service.send_mail_for(
            data_request, "erasure_done", plan=erasure_plan(), forget_recipient=True
        )
    request_service.finish(data_request, outcome="erased")
    data_request.details = None
    data_request.erasure_locked_at = None
    category = get_datamap().get("privacy_requests")
    years = category.retention.years if category and category.retention.years else 3
    data_request.retain_until = _end_of_hold(utcnow(), years)
    return {}
