"""Service emails the privacy center sends, recorded before they are handed to a mail server."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class OutboundMail(db.Model):
    """One message. Its bodies are kept only until delivery, then cleared (data minimisation)."""

    __tablename__ = "outbound_mail"
    __table_args__ = (Index("ix_outbound_mail_user_created", "user_id", "created_at", "id"),)

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    to_address: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    message_id: Mapped[str] = mapped_column(String(255))
    # Extra headers for this message (List-Unsubscribe on marketing email), cleared with the bodies.
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # The last message to an erased account: once sent, not even the address is kept.
    forget_recipient: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
