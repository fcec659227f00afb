"""Marketing email: topics, subscribers, double opt-in, unsubscribe links, the suppression list.

- **Topics** are data (`app/datamap/topics.yaml`), checked at start-up.
- **Subscribers** are addresses, found by a keyed hash of the normalised address (HMAC-SHA256
  with SUPPRESSION_HASH_KEY over the trimmed, lower-cased address); an account's subscriber
  carries its user id.
- A topic's **current state** is one TopicSubscription row per subscriber and topic; every
  change is also a MarketingEvent (append-only history). Turning a topic on only makes it
  *pending*: it starts when the link in the confirmation email is followed (double opt-in).
- **Unsubscribe links** are itsdangerous signatures of `[subscriber id, topic or "*"]`, without
  expiry (links in old emails must keep working) and checked against every key in
  `SECRET_KEY_FALLBACKS` too, so SECRET_KEY can be rotated.
- Every unsubscribe appends a **SuppressionEntry** (the address's keyed hash only, no user
  link), which outlives the account. The entry in force for an address and topic is the newest
  of its entries for that topic and for "*".

State changes are made with conditional UPDATEs (`... WHERE status != 'unsubscribed'`), so
concurrent requests for the same subscriber never lose an update or hit a unique constraint;
the functions that change state commit, so a page only says what the database holds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    MarketingEvent,
    MarketingSubscriber,
    OutboundMail,
    SuppressionEntry,
    TopicSubscription,
    User,
    utcnow,
)
from app.services.audit import record_event
from app.services.mail import queue_mail

TOPICS_PATH = Path(__file__).resolve().parent.parent / "datamap" / "topics.yaml"
ALL_TOPICS = "*"
CHANNELS = frozenset({"email"})
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SOURCES = frozenset({"page", "link", "one_click", "api", "staff", "request"})
# Signing purposes (not secrets): a token made for one purpose is refused by the others.
UNSUBSCRIBE_SALT = "marketing-unsubscribe"
CONFIRM_SALT = "marketing-confirm"
MANAGE_SALT = "marketing-manage"
CONFIRM_TTL = timedelta(days=7)
MANAGE_LINK_TTL = timedelta(hours=1)
MAX_TOKEN_LENGTH = 400  # real tokens are about 60 characters; anything longer is not ours
HISTORY_LIMIT = 100
MAX_PAGE = 1000

CONFIRM_MAIL = "marketing_confirm"
MANAGE_LINK_MAIL = "marketing_manage_link"


# --- errors -----------------------------------------------------------------------------------


class MarketingError(Exception):
    """Base of everything this module refuses."""


class TopicsFileError(ValueError):
    """topics.yaml is malformed; the message names the entry at fault."""


class UnknownTopicError(MarketingError, LookupError):
    pass


class LinkInvalidError(MarketingError):
    """Tampered, truncated, signed with an unknown key, or made for another purpose."""


class LinkExpiredError(MarketingError):
    pass


class LinkUsedError(MarketingError):
    """A confirmation link that was already followed, or replaced by a newer one."""


class SubscriberGoneError(MarketingError):
    """A genuine link for a subscriber that no longer exists (e.g. the account was erased)."""


class UnknownAddressError(MarketingError, LookupError):
    """No subscriber has this address."""


class InvalidAddressError(MarketingError, ValueError):
    pass


class AddressTakenError(MarketingError):
    """The account's address is another account's subscriber (an address that moved)."""


class NotSubscribedError(MarketingError):
    """Marketing email to someone who has not confirmed the topic, or is suppressed for it."""


# --- topics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    key: str
    name: str  # English source text; translate with gettext when showing it
    description: str
    channel: str


def _topic_from(raw: Any, position: int) -> Topic:
    entry = raw.get("key") if isinstance(raw, dict) else None
    label = f"topics.yaml entry {entry or position!r}"
    if not isinstance(raw, dict):
        raise TopicsFileError(f"{label}: must be a mapping")
    unknown = set(raw) - {"key", "channel", "name", "description"}
    if unknown:
        raise TopicsFileError(f"{label}: unknown key(s) {sorted(unknown)}")
    for name in ("key", "channel", "name", "description"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise TopicsFileError(f"{label}: {name!r} is missing or empty")
    if not KEY_PATTERN.match(raw["key"]):
        raise TopicsFileError(f"{label}: key must be lower-case letters, digits and _ (≤ 32)")
    if raw["channel"] not in CHANNELS:
        raise TopicsFileError(f"{label}: unknown channel {raw['channel']!r}")
    return Topic(raw["key"], raw["name"].strip(), raw["description"].strip(), raw["channel"])


def load_topics(path: Path | None = None) -> tuple[Topic, ...]:
    """Read and check the topics file; TopicsFileError names the entry at fault."""
    path = path or TOPICS_PATH
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TopicsFileError(f"{path.name}: cannot be read: {exc}") from exc
    if not isinstance(document, dict) or document.get("version") != 1:
        raise TopicsFileError(f"{path.name}: expected a mapping with version: 1")
    entries = document.get("topics")
    if not isinstance(entries, list) or not entries:
        raise TopicsFileError(f"{path.name}: 'topics' must be a non-empty list")
    loaded = tuple(_topic_from(raw, position) for position, raw in enumerate(entries, 1))
    seen: set[str] = set()
    for topic in loaded:
        if topic.key in seen:
            raise TopicsFileError(f"topics.yaml entry {topic.key!r}: the key is used twice")
        seen.add(topic.key)
    return loaded


@cache
def topics() -> dict[str, Topic]:
    """The topics, in the file's order (read once per process)."""
    return {topic.key: topic for topic in load_topics()}


def require_topic(key: str, *, allow_all: bool = False) -> str:
    if (allow_all and key == ALL_TOPICS) or key in topics():
        return key
    raise UnknownTopicError(key)


def _scope_topics(scope: str) -> list[str]:
    return list(topics()) if scope == ALL_TOPICS else [scope]


# --- addresses --------------------------------------------------------------------------------


def _settings() -> Any:
    return current_app.config["SETTINGS"]


def normalise_email(address: str) -> str:
    """What the keyed hash is computed over: the address trimmed and lower-cased."""
    return address.strip().lower()


def email_hash(address: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) of the normalised address with the suppression key."""
    secret = key if key is not None else _settings().suppression_key
    return hmac.new(secret, normalise_email(address).encode(), hashlib.sha256).hexdigest()


def valid_address(address: str) -> str:
    """The address as email-validator writes it; InvalidAddressError otherwise."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidAddressError(address) from None


# --- subscribers ------------------------------------------------------------------------------


def find_subscriber(address: str) -> MarketingSubscriber | None:
    return db.session.scalar(
        select(MarketingSubscriber).where(MarketingSubscriber.email_hash == email_hash(address))
    )


def subscriber_for_user(user_id: int) -> MarketingSubscriber | None:
    return db.session.scalar(
        select(MarketingSubscriber).where(MarketingSubscriber.user_id == user_id)
    )


def _insert_subscriber(email: str, locale: str, user_id: int | None) -> MarketingSubscriber | None:
    """A new row, or None when a concurrent request created the same one first."""
    subscriber = MarketingSubscriber(
        email=email,
        email_hash=email_hash(email),
        locale=locale,
        user_id=user_id,
        created_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(subscriber)
    except IntegrityError:
        return None
    return subscriber


def add_subscriber(email: str, *, locale: str = "en") -> MarketingSubscriber:
    """The subscriber for an address without an account (a newsletter-only reader)."""
    address = valid_address(email)
    existing = find_subscriber(address)
    if existing is not None:
        return existing
    return _insert_subscriber(address, locale, None) or _required(find_subscriber(address))


def _required(subscriber: MarketingSubscriber | None) -> MarketingSubscriber:
    if subscriber is None:  # pragma: no cover - only when a row vanishes mid-request
        raise SubscriberGoneError
    return subscriber


def ensure_subscriber_for_user(user: User) -> MarketingSubscriber:
    """The account's subscriber, created on first use with its address and language.

    A newsletter-only subscriber with the same address becomes the account's (its topics and
    history come along), so an address is never two subscribers.
    """
    own = subscriber_for_user(user.id)
    if own is not None:
        return own
    by_address = find_subscriber(user.email)
    if by_address is not None and by_address.user_id is None:
        _attach_to_account(by_address, user.id)
        return by_address
    if by_address is not None:  # another account's old address; keep them apart
        raise AddressTakenError(user.email)
    created = _insert_subscriber(user.email, user.locale or "en", user.id)
    return created or _required(subscriber_for_user(user.id) or find_subscriber(user.email))


def _attach_to_account(subscriber: MarketingSubscriber, user_id: int) -> None:
    subscriber.user_id = user_id
    for model in (TopicSubscription, MarketingEvent):
        db.session.execute(
            update(model)
            .where(model.subscriber_id == subscriber.id)
            .values(user_id=user_id)
            .execution_options(synchronize_session=False)
        )
    db.session.flush()


def follow_account_address(user_id: int, new_email: str) -> None:
    """The account's sign-in address changed: its marketing email goes to the new one.

    A newsletter-only subscriber that already had the new address joins the account's
    (its topics the account lacks and its history come along; for a topic both have, the
    account's state stands). The caller commits, together with the address change.
    """
    own = subscriber_for_user(user_id)
    if own is None:
        return
    new_hash = email_hash(new_email)
    other = db.session.scalar(
        select(MarketingSubscriber).where(
            MarketingSubscriber.email_hash == new_hash, MarketingSubscriber.id != own.id
        )
    )
    if other is not None and other.user_id is not None:
        return  # another account's stale address: never join two accounts' lists
    if other is not None:
        _absorb(own, other)
    own.email = new_email.strip()
    own.email_hash = new_hash
    db.session.flush()


def _absorb(own: MarketingSubscriber, other: MarketingSubscriber) -> None:
    own_topics = set(
        db.session.scalars(
            select(TopicSubscription.topic).where(TopicSubscription.subscriber_id == own.id)
        )
    )
    moved = {"subscriber_id": own.id, "user_id": own.user_id}
    db.session.execute(
        update(TopicSubscription)
        .where(
            TopicSubscription.subscriber_id == other.id,
            TopicSubscription.topic.not_in(own_topics or {""}),
        )
        .values(**moved)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(MarketingEvent)
        .where(MarketingEvent.subscriber_id == other.id)
        .values(**moved)
        .execution_options(synchronize_session=False)
    )
    db.session.delete(other)  # its remaining topic rows go with it (ON DELETE CASCADE)
    db.session.flush()


# --- what a subscriber gets -------------------------------------------------------------------

NOT_SUBSCRIBED = "none"  # no row yet: never asked for the topic


@dataclass(frozen=True)
class TopicState:
    topic: Topic
    status: str  # subscribed | pending | unsubscribed | none
    since: datetime | None

    @property
    def is_on(self) -> bool:
        """On or waiting for confirmation: what the switch shows."""
        return self.status in (TopicSubscription.SUBSCRIBED, TopicSubscription.PENDING)


def topic_states(subscriber_id: int | None) -> list[TopicState]:
    """Every topic, in the file's order, with this subscriber's state."""
    rows: dict[str, TopicSubscription] = {}
    if subscriber_id is not None:
        rows = {
            row.topic: row
            for row in db.session.scalars(
                select(TopicSubscription).where(TopicSubscription.subscriber_id == subscriber_id)
            )
        }
    states = []
    for key, topic in topics().items():
        row = rows.get(key)
        status = row.status if row is not None else NOT_SUBSCRIBED
        states.append(TopicState(topic, status, row.updated_at if row is not None else None))
    return states


def topic_state(subscriber_id: int | None, key: str) -> TopicState:
    require_topic(key)
    return next(state for state in topic_states(subscriber_id) if state.topic.key == key)


def history(subscriber_id: int, limit: int = HISTORY_LIMIT) -> list[MarketingEvent]:
    """The newest changes first."""
    return list(
        db.session.scalars(
            select(MarketingEvent)
            .where(MarketingEvent.subscriber_id == subscriber_id)
            .order_by(MarketingEvent.created_at.desc(), MarketingEvent.id.desc())
            .limit(limit)
        )
    )


# --- tokens -----------------------------------------------------------------------------------


def _signing_keys() -> list[str]:
    """Checked with each key; signed with the last one (the current SECRET_KEY)."""
    settings = _settings()
    return [*settings.secret_key_fallbacks, settings.secret_key]


def unsubscribe_token(subscriber_id: int, topic: str) -> str:
    """`[subscriber id, topic or "*"]`, signed, no expiry: about 60 URL-safe characters."""
    require_topic(topic, allow_all=True)
    return URLSafeSerializer(_signing_keys(), salt=UNSUBSCRIBE_SALT).dumps([subscriber_id, topic])


def read_unsubscribe_token(token: str) -> tuple[int, str]:
    """(subscriber id, topic or "*"); LinkInvalidError, or UnknownTopicError for a genuine
    token naming a topic that was removed from topics.yaml."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise LinkInvalidError
    try:
        payload = URLSafeSerializer(_signing_keys(), salt=UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        raise LinkInvalidError from None
    subscriber_id, topic = _id_and_text(payload)
    return subscriber_id, require_topic(topic, allow_all=True)


def _id_and_text(payload: Any) -> tuple[int, str]:
    """A signed link's `[id, text]` payload; LinkInvalidError for anything else (a payload
    signed by us for another purpose, or by an older version)."""
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or type(payload[0]) is not int
        or not isinstance(payload[1], str)
    ):
        raise LinkInvalidError
    return payload[0], payload[1]


def subscriber_for_token(token: str) -> tuple[MarketingSubscriber, str]:
    """The subscriber and topic (or "*") a link names; changes nothing."""
    subscriber_id, topic = read_unsubscribe_token(token)
    subscriber = db.session.get(MarketingSubscriber, subscriber_id)
    if subscriber is None:
        raise SubscriberGoneError
    return subscriber, topic


def _timed(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_signing_keys(), salt=salt)


def _load_timed(salt: str, token: str, max_age: timedelta) -> Any:
    if len(token) > MAX_TOKEN_LENGTH:
        raise LinkInvalidError
    try:
        return _timed(salt).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise LinkExpiredError from None
    except BadSignature:
        raise LinkInvalidError from None


def manage_link_token(subscriber_id: int) -> str:
    return _timed(MANAGE_SALT).dumps([subscriber_id])


def read_manage_link_token(token: str) -> MarketingSubscriber:
    """The subscriber of an emailed manage link (one hour)."""
    payload = _load_timed(MANAGE_SALT, token, MANAGE_LINK_TTL)
    if not isinstance(payload, list) or len(payload) != 1 or type(payload[0]) is not int:
        raise LinkInvalidError
    subscriber = db.session.get(MarketingSubscriber, payload[0])
    if subscriber is None:
        raise SubscriberGoneError
    return subscriber


def _hash_nonce(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _confirm_token(subscription_id: int, nonce: str) -> str:
    return _timed(CONFIRM_SALT).dumps([subscription_id, nonce])


# --- links for emails -------------------------------------------------------------------------
# Built from BASE_URL, not url_for: mail is rendered by jobs and commands, outside any request.
# The paths are a stable interface (DESIGN §5).


def unsubscribe_url(subscriber_id: int, topic: str) -> str:
    return f"{_settings().base_url}/unsubscribe/{unsubscribe_token(subscriber_id, topic)}"


def manage_url(subscriber_id: int, topic: str = ALL_TOPICS) -> str:
    """Opens the subscriber's preferences without signing in (a short token-scoped session)."""
    return f"{unsubscribe_url(subscriber_id, topic)}/manage"


def _mailto_address() -> str:
    """The address of MAIL_FROM (`Name <address>` or a bare address)."""
    sender = _settings().mail_from
    match = re.search(r"<([^<>]+)>", sender)
    return (match.group(1) if match else sender).strip()


def list_unsubscribe_headers(email: str, topic: str | None = None) -> dict[str, str]:
    """The RFC 2369 / RFC 8058 headers for a marketing message to `email` about `topic`
    (None: all marketing). UnknownAddressError when the address is not a subscriber."""
    scope = require_topic(topic, allow_all=True) if topic is not None else ALL_TOPICS
    subscriber = find_subscriber(email)
    if subscriber is None:
        raise UnknownAddressError(email)
    return _headers_for(subscriber, scope)


def _headers_for(subscriber: MarketingSubscriber, scope: str) -> dict[str, str]:
    token = unsubscribe_token(subscriber.id, scope)
    https = f"{_settings().base_url}/unsubscribe/{token}"
    mailto = f"mailto:{_mailto_address()}?subject=unsubscribe-{token}"
    return {
        "List-Unsubscribe": f"<{https}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def queue_marketing_mail(
    subscriber: MarketingSubscriber, topic: str, template: str, **context: Any
) -> OutboundMail:
    """A marketing message about `topic`, with its unsubscribe headers and links; the caller
    commits. Refused (NotSubscribedError) unless the topic is confirmed and not suppressed."""
    require_topic(topic)
    row = _subscription(subscriber.id, topic)
    if row is None or row.status != TopicSubscription.SUBSCRIBED:
        raise NotSubscribedError(topic)
    if is_suppressed(subscriber.email_hash, topic):
        raise NotSubscribedError(topic)
    return queue_mail(
        to=subscriber.email,
        template=template,
        locale=subscriber.locale,
        user_id=subscriber.user_id,
        headers=_headers_for(subscriber, topic),
        topic_name=topics()[topic].name,
        address=subscriber.email,
        unsubscribe_url=unsubscribe_url(subscriber.id, topic),
        manage_url=manage_url(subscriber.id, topic),
        **context,
    )


def send_manage_link(address: str, *, link_url: Callable[[str], str]) -> bool:
    """Email a one-hour manage link to `address` if it is a subscriber; True when one was
    queued. The caller answers the same either way (no one learns who is on the list)."""
    subscriber = find_subscriber(address)
    if subscriber is None:
        return False
    queue_mail(
        to=subscriber.email,
        template=MANAGE_LINK_MAIL,
        locale=subscriber.locale,
        user_id=subscriber.user_id,
        manage_url=link_url(manage_link_token(subscriber.id)),
        valid_minutes=int(MANAGE_LINK_TTL.total_seconds() // 60),
    )
    db.session.commit()
    return True


# --- recording --------------------------------------------------------------------------------


def _record(
    subscriber: MarketingSubscriber,
    topic: str,
    action: str,
    *,
    source: str,
    actor_id: int | None,
    at: datetime,
) -> None:
    db.session.add(
        MarketingEvent(
            subscriber_id=subscriber.id,
            user_id=subscriber.user_id,
            topic=topic,
            action=action,
            source=source,
            actor_id=actor_id,
            created_at=at,
        )
    )


def _audit(
    subscriber: MarketingSubscriber,
    action: str,
    scope: str,
    topics_changed: Iterable[str],
    *,
    source: str,
    actor_id: int | None,
) -> None:
    """An audit event when an account's subscriptions changed (not for address-only ones)."""
    changed = sorted(topics_changed)
    if subscriber.user_id is None or not changed:
        return
    actor_type = {"api": "platform", "staff": "staff"}.get(source, "user")
    record_event(
        f"marketing.{action}",
        actor_type=actor_type,
        actor_id=actor_id if source in ("staff", "page") else None,
        subject_user_id=subscriber.user_id,
        target=f"marketing:{scope}",
        details={"source": source, "topics": changed},
    )


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")


def _subscription(subscriber_id: int, topic: str) -> TopicSubscription | None:
    return db.session.scalar(
        select(TopicSubscription).where(
            TopicSubscription.subscriber_id == subscriber_id, TopicSubscription.topic == topic
        )
    )


# --- suppression ------------------------------------------------------------------------------


def _entry_in_force(hash_value: str, topic: str) -> SuppressionEntry | None:
    """The newest entry for the topic or for "*": the one that decides."""
    return db.session.scalar(
        select(SuppressionEntry)
        .where(
            SuppressionEntry.email_hash == hash_value,
            or_(SuppressionEntry.topic == topic, SuppressionEntry.topic == ALL_TOPICS),
        )
        .order_by(SuppressionEntry.id.desc())
        .limit(1)
    )


def is_suppressed(hash_value: str, topic: str) -> bool:
    entry = _entry_in_force(hash_value, topic)
    return entry is not None and entry.suppressed


def _suppress(subscriber: MarketingSubscriber, scope: str, reason: str, at: datetime) -> None:
    db.session.add(
        SuppressionEntry(
            email_hash=subscriber.email_hash,
            topic=scope,
            suppressed=True,
            reason=reason,
            created_at=at,
        )
    )


def suppress_address(address: str, reason: str) -> bool:
    """Put an address on the do-not-email list for all marketing (an erased account's, a
    withdrawn consent's); the caller commits. False when it was already there."""
    hash_value = email_hash(address)
    if is_suppressed(hash_value, ALL_TOPICS):
        return False
    db.session.add(
        SuppressionEntry(email_hash=hash_value, topic=ALL_TOPICS, suppressed=True, reason=reason)
    )
    return True


def _lift(subscriber: MarketingSubscriber, topic: str, at: datetime) -> None:
    """The person wants the topic again: lift the suppression, if one is in force."""
    if is_suppressed(subscriber.email_hash, topic):
        db.session.add(
            SuppressionEntry(
                email_hash=subscriber.email_hash,
                topic=topic,
                suppressed=False,
                reason="resubscribe",
                created_at=at,
            )
        )


def suppressions_since(cursor: int, limit: int) -> list[SuppressionEntry]:
    """Entries after `cursor` (an entry id; 0 for the start), oldest first."""
    return list(
        db.session.scalars(
            select(SuppressionEntry)
            .where(SuppressionEntry.id > cursor)
            .order_by(SuppressionEntry.id)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
    )


# --- changes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unsubscribed:
    scope: str
    stopped: tuple[str, ...]  # topics that were running (what "undo" may restore)
    cancelled: tuple[str, ...]  # topics that were waiting for confirmation

    @property
    def changed(self) -> tuple[str, ...]:
        return self.stopped + self.cancelled


def _set_unsubscribed(
    subscriber_id: int, keys: list[str], was: str, at: datetime
) -> tuple[str, ...]:
    """Move rows in state `was` to unsubscribed; the topics that moved. One conditional
    UPDATE: of two concurrent requests, exactly one moves each row."""
    result = db.session.execute(
        update(TopicSubscription)
        .where(
            TopicSubscription.subscriber_id == subscriber_id,
            TopicSubscription.topic.in_(keys),
            TopicSubscription.status == was,
        )
        .values(status=TopicSubscription.UNSUBSCRIBED, confirm_nonce_hash=None, updated_at=at)
        .returning(TopicSubscription.topic)
        .execution_options(synchronize_session=False)
    )
    return tuple(sorted(result.scalars()))


def unsubscribe(
    subscriber: MarketingSubscriber, scope: str, *, source: str, actor_id: int | None = None
) -> Unsubscribed:
    """Stop `scope` (a topic, or "*" for all marketing) and commit.

    Every call is recorded, even when nothing was running (a repeated one-click post, a
    second press): one MarketingEvent and one SuppressionEntry each, so the history and the
    suppression list show every request, and a repeat changes no state.
    """
    result = _unsubscribe(subscriber, scope, source=source, actor_id=actor_id)
    db.session.commit()
    return result


def _unsubscribe(
    subscriber: MarketingSubscriber, scope: str, *, source: str, actor_id: int | None
) -> Unsubscribed:
    _check_source(source)
    require_topic(scope, allow_all=True)
    keys = _scope_topics(scope)
    now = utcnow()
    stopped = _set_unsubscribed(subscriber.id, keys, TopicSubscription.SUBSCRIBED, now)
    # A topic that was running cannot also be waiting (one row per topic): skip the second
    # statement when nothing is left to look at, as for a one-click on a running topic.
    waiting = [key for key in keys if key not in stopped]
    cancelled = (
        _set_unsubscribed(subscriber.id, waiting, TopicSubscription.PENDING, now) if waiting else ()
    )
    _record(subscriber, scope, "unsubscribed", source=source, actor_id=actor_id, at=now)
    _suppress(subscriber, scope, _reason(source), now)
    _audit(subscriber, "unsubscribed", scope, stopped + cancelled, source=source, actor_id=actor_id)
    return Unsubscribed(scope, stopped, cancelled)


def withdraw_address(address: str, *, source: str, actor_id: int | None = None) -> None:
    """Stop all marketing to an address, whether or not it is on the list yet (a withdrawn
    consent, a verified request by email); the caller commits."""
    subscriber = find_subscriber(address)
    if subscriber is not None:
        _unsubscribe(subscriber, ALL_TOPICS, source=source, actor_id=actor_id)
    else:
        suppress_address(address, reason=source)


def _reason(source: str) -> str:
    """The suppression entry's reason code."""
    return source if source in ("one_click", "staff", "request") else "unsubscribe"


def resubscribe(
    subscriber: MarketingSubscriber,
    keys: Iterable[str],
    *,
    source: str,
    actor_id: int | None = None,
) -> tuple[str, ...]:
    """Undo an unsubscribe: topics the person had confirmed before run again, without a new
    opt-in (their confirmation stands). Only unsubscribed rows move; the topics that did."""
    _check_source(source)
    wanted = [require_topic(key) for key in keys]
    if not wanted:
        return ()
    now = utcnow()
    result = db.session.execute(
        update(TopicSubscription)
        .where(
            TopicSubscription.subscriber_id == subscriber.id,
            TopicSubscription.topic.in_(wanted),
            TopicSubscription.status == TopicSubscription.UNSUBSCRIBED,
            TopicSubscription.confirmed_at.is_not(None),
        )
        .values(status=TopicSubscription.SUBSCRIBED, updated_at=now)
        .returning(TopicSubscription.topic)
        .execution_options(synchronize_session=False)
    )
    restored = tuple(sorted(result.scalars()))
    for topic in restored:
        _record(subscriber, topic, "resubscribed", source=source, actor_id=actor_id, at=now)
        _lift(subscriber, topic, now)
    scope = restored[0] if len(restored) == 1 else ALL_TOPICS
    _audit(subscriber, "resubscribed", scope, restored, source=source, actor_id=actor_id)
    db.session.commit()
    return restored


def _pending_row(
    subscriber: MarketingSubscriber, topic: str, nonce_hash: str, at: datetime
) -> TopicSubscription:
    """The topic's row, now pending with a fresh nonce (created when there is none yet)."""
    row = _subscription(subscriber.id, topic)
    if row is None:
        row = TopicSubscription(
            subscriber_id=subscriber.id,
            user_id=subscriber.user_id,
            topic=topic,
            status=TopicSubscription.PENDING,
            confirm_nonce_hash=nonce_hash,
            requested_at=at,
            updated_at=at,
        )
        try:
            with db.session.begin_nested():
                db.session.add(row)
            return row
        except IntegrityError:  # a concurrent request created it: update that one
            row = _subscription(subscriber.id, topic)
            if row is None:  # pragma: no cover - deleted between the two statements
                raise SubscriberGoneError from None
    db.session.execute(
        update(TopicSubscription)
        .where(
            TopicSubscription.id == row.id,
            TopicSubscription.status != TopicSubscription.SUBSCRIBED,
        )
        .values(
            status=TopicSubscription.PENDING,
            confirm_nonce_hash=nonce_hash,
            requested_at=at,
            updated_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(row)
    return row


def request_subscription(
    subscriber: MarketingSubscriber,
    topic: str,
    *,
    source: str,
    confirm_url: Callable[[str], str],
    actor_id: int | None = None,
) -> TopicState:
    """Turn a topic on: it waits for the link in the confirmation email (double opt-in).

    Asking again while it waits sends a new link (the old one stops working); asking for a
    topic that is already running changes nothing. Commits.
    """
    _check_source(source)
    require_topic(topic)
    existing = _subscription(subscriber.id, topic)
    if existing is not None and existing.status == TopicSubscription.SUBSCRIBED:
        db.session.rollback()
        return topic_state(subscriber.id, topic)
    now = utcnow()
    nonce = secrets.token_urlsafe(16)
    row = _pending_row(subscriber, topic, _hash_nonce(nonce), now)
    if row.status != TopicSubscription.PENDING:  # confirmed meanwhile by another request
        db.session.rollback()
        return topic_state(subscriber.id, topic)
    _record(subscriber, topic, "requested", source=source, actor_id=actor_id, at=now)
    _audit(subscriber, "requested", topic, [topic], source=source, actor_id=actor_id)
    queue_mail(
        to=subscriber.email,
        template=CONFIRM_MAIL,
        locale=subscriber.locale,
        user_id=subscriber.user_id,
        topic_name=topics()[topic].name,
        topic_description=topics()[topic].description,
        address=subscriber.email,
        confirm_url=confirm_url(_confirm_token(row.id, nonce)),
        valid_days=CONFIRM_TTL.days,
    )
    db.session.commit()
    return topic_state(subscriber.id, topic)


@dataclass(frozen=True)
class PendingConfirmation:
    subscription: TopicSubscription
    subscriber: MarketingSubscriber
    topic: Topic


def check_confirmation(token: str) -> PendingConfirmation:
    """What a confirmation link stands for, if it can still be used; changes nothing."""
    subscription_id, nonce = _id_and_text(_load_timed(CONFIRM_SALT, token, CONFIRM_TTL))
    row = db.session.get(TopicSubscription, subscription_id)
    if row is None:
        raise SubscriberGoneError
    topic = topics().get(row.topic)
    if topic is None:
        raise UnknownTopicError(row.topic)
    if row.confirm_nonce_hash is None or not hmac.compare_digest(
        row.confirm_nonce_hash, _hash_nonce(nonce)
    ):
        # Followed already (the hash is cleared), or replaced by a newer link, or cancelled.
        raise LinkUsedError
    subscriber = db.session.get(MarketingSubscriber, row.subscriber_id)
    if subscriber is None:  # pragma: no cover - the row cascades with its subscriber
        raise SubscriberGoneError
    return PendingConfirmation(row, subscriber, topic)


def confirm_subscription(token: str) -> PendingConfirmation:
    """Start the subscription a confirmation link is for. Single use: of two clicks at once,
    one confirms and the other gets LinkUsedError. Commits."""
    pending = check_confirmation(token)
    row, subscriber = pending.subscription, pending.subscriber
    now = utcnow()
    claimed = db.session.execute(
        update(TopicSubscription)
        .where(
            TopicSubscription.id == row.id,
            TopicSubscription.status == TopicSubscription.PENDING,
            TopicSubscription.confirm_nonce_hash == row.confirm_nonce_hash,
        )
        .values(
            status=TopicSubscription.SUBSCRIBED,
            confirm_nonce_hash=None,
            confirmed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        raise LinkUsedError
    _record(subscriber, row.topic, "confirmed", source="link", actor_id=None, at=now)
    _lift(subscriber, row.topic, now)
    _audit(subscriber, "confirmed", row.topic, [row.topic], source="link", actor_id=None)
    db.session.commit()
    db.session.refresh(row)
    return pending


# --- demo data --------------------------------------------------------------------------------


def seed_subscriber(
    email: str,
    topic_keys: Iterable[str],
    *,
    locale: str = "en",
    user_id: int | None = None,
    confirmed_at: datetime | None = None,
) -> bool:
    """Demo data: an address subscribed (and confirmed) to `topic_keys`, with its history.
    False, and nothing changed, when the address is already a subscriber."""
    if find_subscriber(email) is not None or (
        user_id is not None and subscriber_for_user(user_id) is not None
    ):
        return False
    at = confirmed_at or utcnow()
    asked = at - timedelta(minutes=4)
    subscriber = _insert_subscriber(email, locale, user_id)
    if subscriber is None:  # pragma: no cover - seeded concurrently
        db.session.rollback()
        return False
    for key in topic_keys:
        require_topic(key)
        db.session.add(
            TopicSubscription(
                subscriber_id=subscriber.id,
                user_id=user_id,
                topic=key,
                status=TopicSubscription.SUBSCRIBED,
                requested_at=asked,
                confirmed_at=at,
                updated_at=at,
            )
        )
        _record(subscriber, key, "requested", source="page", actor_id=None, at=asked)
        _record(subscriber, key, "confirmed", source="link", actor_id=None, at=at)
    db.session.commit()
    return True
