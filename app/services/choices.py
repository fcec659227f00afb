"""Choices about optional processing (objection to model improvement, and later others).

Choices are append-only: each change is a new row with its time and source, so the person's
history and the proof that we respected it survive every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import ProcessingChoice, utcnow
from app.services.audit import record_event

MODEL_IMPROVEMENT = "improve_models"
# Purposes a person can switch off, with the default when they never chose (legitimate
# interests: on until the person objects).
OPTIONAL_PURPOSES = {MODEL_IMPROVEMENT: True}
SOURCES = frozenset({"page", "api", "staff"})


class UnknownPurposeError(ValueError):
    pass


@dataclass(frozen=True)
class CurrentChoice:
    purpose: str
    allowed: bool
    source: str  # "default" when the person never chose
    since: datetime | None


def current_choice(user_id: int, purpose: str) -> CurrentChoice:
    if purpose not in OPTIONAL_PURPOSES:
        raise UnknownPurposeError(purpose)
    latest = db.session.scalar(
        select(ProcessingChoice)
        .where(ProcessingChoice.user_id == user_id, ProcessingChoice.purpose == purpose)
        .order_by(ProcessingChoice.created_at.desc(), ProcessingChoice.id.desc())
        .limit(1)
    )
    if latest is None:
        return CurrentChoice(purpose, OPTIONAL_PURPOSES[purpose], "default", None)
    return CurrentChoice(purpose, latest.allowed, latest.source, latest.created_at)


def set_choice(
    user_id: int, purpose: str, *, allowed: bool, source: str, actor_id: int | None = None
) -> ProcessingChoice:
    """Record a choice and its audit event; the caller commits."""
    if purpose not in OPTIONAL_PURPOSES:
        raise UnknownPurposeError(purpose)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    choice = ProcessingChoice(
        user_id=user_id, purpose=purpose, allowed=allowed, source=source, created_at=utcnow()
    )
    db.session.add(choice)
    record_event(
        "choice.recorded",
        actor_type={"page": "user", "api": "platform", "staff": "staff"}[source],
        actor_id=actor_id if source != "page" else user_id,
        subject_user_id=user_id,
        target=f"processing:{purpose}",
        details={"allowed": allowed, "source": source},
    )
    return choice


def choice_history(user_id: int, purpose: str) -> list[ProcessingChoice]:
    return list(
        db.session.scalars(
            select(ProcessingChoice)
            .where(ProcessingChoice.user_id == user_id, ProcessingChoice.purpose == purpose)
            .order_by(ProcessingChoice.created_at.desc(), ProcessingChoice.id.desc())
        )
    )
