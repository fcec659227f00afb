"""The tamper-evident audit log.

Each event stores the hash of the event before it, and its own hash covers its content and
that previous hash. Changing, deleting or inserting an event anywhere breaks every link after
it, which `verify_chain` (and `flask --app wsgi audit verify`) reports.

Events are added in the caller's transaction, so an action and its audit record commit
together or not at all. Appends are serialised (an advisory lock on PostgreSQL, SQLite's
single writer) so two concurrent actions can never both claim the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditEvent, utcnow

GENESIS_HASH = "0" * 64
_ADVISORY_LOCK_KEY = 0x5041_5544  # "PAUD": any constant shared by every writer


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "id": event.id,
        "created_at": event.created_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "action": event.action,
        "subject_user_id": event.subject_user_id,
        "target": event.target,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


def _lock_chain() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})


def record_event(
    action: str,
    *,
    actor_type: str,
    actor_id: int | None = None,
    subject_user_id: int | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event to the chain in the current transaction (the caller commits)."""
    _lock_chain()
    # Insert first: on SQLite this takes the write lock, so no other writer can slip an
    # event in between reading the predecessor and sealing this one.
    event = AuditEvent(
        created_at=utcnow().replace(microsecond=0),
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        subject_user_id=subject_user_id,
        target=target,
        details=details or {},
        prev_hash=GENESIS_HASH,
        hash=f"pending-{id(object())}",
    )
    db.session.add(event)
    db.session.flush()
    previous = db.session.scalar(
        select(AuditEvent.hash)
        .where(AuditEvent.id < event.id)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    event.prev_hash = previous or GENESIS_HASH
    event.hash = compute_hash(event)
    db.session.flush()
    return event


def verify_chain(batch_size: int = 1000) -> ChainReport:
    """Walk the whole log in order; report the first event whose link or seal is wrong."""
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.id > last_id)
            .order_by(AuditEvent.id)
            .limit(batch_size)
        ).all()
        if not events:
            return ChainReport(checked, None, None)
        for event in events:
            if event.prev_hash != expected_prev:
                return ChainReport(checked, event.id, "does not link to the event before it")
            if compute_hash(event) != event.hash:
                return ChainReport(checked, event.id, "its content does not match its hash")
            expected_prev = event.hash
            checked += 1
            last_id = event.id
        db.session.expunge_all()
