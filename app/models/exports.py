"""Data exports (access and portability): requested, built in the background, downloaded."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class Export(db.Model):
    """One export. The archive file exists only while `status` is READY and not expired."""

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_user_created", "user_id", "created_at", "id"),
        Index("ix_exports_status_expires", "status", "expires_at"),
    )

    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"
    IN_PROGRESS = (QUEUED, BUILDING)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    # Data-map category keys chosen, and the optional date range (inclusive).
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    date_from: Mapped[date | None] = mapped_column(Date)
    date_to: Mapped[date | None] = mapped_column(Date)
    progress: Mapped[int] = mapped_column(Integer, default=0)  # 0..100 while building
    # Relative to DATA_DIR/exports; a random name so it cannot be guessed.
    file_name: Mapped[str | None] = mapped_column(String(128), unique=True)
    byte_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # counts per category
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
