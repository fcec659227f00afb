"""How the platform is used: feature usage, sessions, and the devices that connect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class UsageEvent(db.Model):
    """One use of a feature (generate, edit, upscale, ...), with the credits it cost."""

    __tablename__ = "usage_events"
    __table_args__ = (Index("ix_usage_events_user_created", "user_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    feature: Mapped[str] = mapped_column(String(64))
    credits_used: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SessionActivity(db.Model):
    """One visit to the platform: when it started and ended and how much was done."""

    __tablename__ = "session_activity"
    __table_args__ = (Index("ix_session_activity_user_started", "user_id", "started_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pages_viewed: Mapped[int] = mapped_column(Integer, default=0)
    client: Mapped[str] = mapped_column(String(32), default="web")


class DeviceRecord(db.Model):
    """An access from a device: address, browser, system, device identifier and time."""

    __tablename__ = "device_records"
    __table_args__ = (Index("ix_device_records_user_accessed", "user_id", "accessed_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ip_address: Mapped[str] = mapped_column(String(45))
    browser: Mapped[str] = mapped_column(String(64))
    operating_system: Mapped[str] = mapped_column(String(64))
    device_identifier: Mapped[str] = mapped_column(String(64))
    accessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
