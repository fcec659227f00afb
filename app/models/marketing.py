"""Marketing email: subscribers, their topics, the history of every change, suppressions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class MarketingSubscriber(db.Model):
    """An address that may receive marketing email: an account's, or a newsletter-only one."""

    __tablename__ = "marketing_subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    email: Mapped[str] = mapped_column(String(254))
    # Keyed hash of the normalised address: finds a subscriber without an index on addresses,
    # and is the same value the suppression list holds.
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TopicSubscription(db.Model):
    """The current state of one subscriber's one topic; every change is also a MarketingEvent."""

    __tablename__ = "topic_subscriptions"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "topic"),
        Index("ix_topic_subscriptions_user", "user_id", "updated_at", "id"),
    )

    PENDING = "pending"  # asked for; waits for the confirmation link (double opt-in)
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("marketing_subscribers.id", ondelete="CASCADE")
    )
    # The account, when the subscriber has one (lets the data map find the rows).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # Hash of the random value in the pending confirmation link: single use, and a database
    # reader cannot build a working link.
    confirm_nonce_hash: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MarketingEvent(db.Model):
    """One change to a subscriber's topics (who, what, when, how); rows are only inserted."""

    __tablename__ = "marketing_events"
    __table_args__ = (
        Index("ix_marketing_events_subscriber", "subscriber_id", "created_at", "id"),
        Index("ix_marketing_events_user", "user_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("marketing_subscribers.id", ondelete="CASCADE")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(32))  # a topic key, or "*" for all marketing
    # requested | confirmed | unsubscribed | resubscribed
    action: Mapped[str] = mapped_column(String(16))
    # page | link | one_click | api | staff
    source: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)  # staff member, when staff acted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SuppressionEntry(db.Model):
    """A change to the suppression list: an address (as a keyed hash) added or lifted.

    Append-only, so the platform can follow it with a cursor (`since=`); the newest entry for
    a hash and topic is in force. No user link: it outlives the account by design.
    """

    __tablename__ = "marketing_suppressions"
    __personal_data__ = (
        "no: a keyed hash of an address, unlinkable to an account, kept so that we never "
        "email someone who asked us to stop"
    )
    __table_args__ = (Index("ix_marketing_suppressions_hash", "email_hash", "topic", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(32))  # a topic key, or "*" for all marketing
    suppressed: Mapped[bool] = mapped_column(Boolean)  # False: lifted (the person resubscribed)
    # unsubscribe | one_click | erasure | staff | resubscribe
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
