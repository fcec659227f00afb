"""The consent ledger: every cookie-consent decision, as a receipt that is never changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class ConsentRecord(db.Model):
    """One decision about cookie purposes (a consent receipt); rows are only ever inserted.

    The subject is an account (`user_id`) or, before sign-in, a browser known only by the
    random id in its first-party cookie (`browser_id`); a merge at sign-in writes a record
    that carries both. The current state of a subject is its newest record.
    """

    __tablename__ = "consent_records"
    __table_args__ = (
        Index("ix_consent_records_user_created", "user_id", "created_at", "id"),
        Index("ix_consent_records_browser_created", "browser_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Public identifier of the receipt (shown to the person, quoted in the cookie).
    receipt_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    browser_id: Mapped[str | None] = mapped_column(String(32))
    # {purpose key: allowed}, for every optional purpose of `purposes_version`.
    choices: Mapped[dict[str, Any]] = mapped_column(JSON)
    purposes_version: Mapped[str] = mapped_column(String(32))
    notice_version: Mapped[str] = mapped_column(String(32))
    jurisdiction: Mapped[str] = mapped_column(String(8))  # country, or country-region
    consent_model: Mapped[str] = mapped_column(String(8))  # opt_in | opt_out
    source: Mapped[str] = mapped_column(String(16))  # one of app.services.consent.SOURCES
    gpc: Mapped[bool] = mapped_column(Boolean, default=False)  # Sec-GPC: 1 was present
    user_agent_hash: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
