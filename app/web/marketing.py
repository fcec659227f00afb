"""Marketing emails: /preferences/marketing, and the unsubscribe links in every marketing email.

Who may change what:
- a signed-in person: their account's subscriber;
- anyone holding a link from one of our emails (an unsubscribe link, a manage link, a
  confirmation link): that one subscriber's marketing topics, for 30 minutes, through a
  token-scoped session (the subscriber's id and an expiry in the signed session cookie). It
  opens nothing else: no account, no data pages.

`GET /unsubscribe/<token>` never changes anything (mail scanners open links); the change is a
POST, either the page's button (CSRF-checked) or an RFC 8058 one-click POST from a mail
program (`List-Unsubscribe=One-Click`, no cookie, no CSRF token), which reads and writes no
session and answers 200 with a few words of plain text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import ValidationError, validate_csrf
from werkzeug.wrappers import Response
from wtforms import HiddenField
from wtforms.validators import AnyOf

from app.extensions import csrf, db, limiter
from app.models import MarketingSubscriber
from app.services import marketing
from app.services.marketing import (
    ALL_TOPICS,
    LinkExpiredError,
    LinkInvalidError,
    LinkUsedError,
    MarketingError,
    SubscriberGoneError,
    UnknownTopicError,
)
from app.services.profile import mask_email
from app.web.data import (
    CHOICE_SOURCE_TEXTS,
    MARKETING_ACTION_TEXTS,
    TOPIC_STATUS_TEXTS,
    marketing_topic_name,
)
from app.web.errors import CSRF_TEXT, render_error
from app.web.forms import ButtonForm, your_email_address
from app.web.htmx import wants_fragment
from app.web.safety import without_session

bp = Blueprint("marketing", __name__)
# A bad topics.yaml stops the app at start-up, with the entry named, not at the first visit.
bp.record_once(lambda _state: marketing.topics())

MANAGE_SESSION_KEY = "marketing_manage"
UNDO_SESSION_KEY = "marketing_undo"
MANAGE_SESSION_SECONDS = 30 * 60
UNDO_SECONDS = 30 * 60
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


# --- forms ------------------------------------------------------------------------------------


class TopicSwitchForm(FlaskForm):
    # Sent by the switch button itself (name="subscribe" value="0|1"): one tap, no script.
    subscribe = HiddenField(validators=[AnyOf(("0", "1"))])


class ManageLinkForm(FlaskForm):
    email = your_email_address()


# --- who is choosing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Whose marketing emails this page shows: a signed-in account's, or a linked address's."""

    subscriber: MarketingSubscriber | None  # None: a signed-in account that never chose
    address: str
    user_id: int | None  # signed in (the actor of audit events)
    minutes_left: int | None  # a token-scoped session: how long it lasts


def _start_manage_session(subscriber_id: int) -> None:
    session[MANAGE_SESSION_KEY] = {
        "s": subscriber_id,
        "until": int(time.time()) + MANAGE_SESSION_SECONDS,
    }


def _managed_subscriber() -> tuple[MarketingSubscriber, int] | None:
    data = session.get(MANAGE_SESSION_KEY)
    if not isinstance(data, dict):
        return None
    left = int(data.get("until", 0)) - int(time.time())
    subscriber = db.session.get(MarketingSubscriber, data.get("s")) if left > 0 else None
    if subscriber is None:
        session.pop(MANAGE_SESSION_KEY, None)
        return None
    return subscriber, left


def _viewer() -> Viewer | None:
    """A session started from a link comes first (the person followed it on purpose), then
    the signed-in account; None for a visitor with neither."""
    managed = _managed_subscriber()
    if managed is not None:
        subscriber, left = managed
        return Viewer(subscriber, subscriber.email, None, max(1, left // 60))
    if current_user.is_authenticated:
        own = marketing.subscriber_for_user(current_user.id)
        return Viewer(own, own.email if own else current_user.email, current_user.id, None)
    return None


def _subscriber_to_change(viewer: Viewer) -> MarketingSubscriber:
    """The viewer's subscriber; an account gets one on its first change."""
    if viewer.subscriber is not None:
        return viewer.subscriber
    try:
        return marketing.ensure_subscriber_for_user(current_user._get_current_object())
    except marketing.AddressTakenError:
        db.session.rollback()
        page, status = render_error(
            409,
            _("These emails cannot be set up here"),
            _(
                "Your address is already on our mailing list, linked to another account. Write to "
                "the privacy team and we will sort it out; nothing was changed."
            ),
        )
        abort(make_response(page, status))


def _absolute(endpoint: str, **values: Any) -> str:
    return current_app.config["SETTINGS"].base_url + url_for(endpoint, **values)


def _confirm_url(token: str) -> str:
    return _absolute("marketing.confirm", token=token)


# --- words ------------------------------------------------------------------------------------


def _helpers() -> dict[str, Any]:
    return {
        "topic_name": lambda key: marketing_topic_name(key) or key,
        "action_words": MARKETING_ACTION_TEXTS,
        "source_words": CHOICE_SOURCE_TEXTS,
        "status_words": TOPIC_STATUS_TEXTS,
        "all_topics": ALL_TOPICS,
    }


def _saved_message(topic: str, state: marketing.TopicState, address: str) -> str:
    name = marketing_topic_name(topic) or topic
    if state.status == "subscribed":
        return _("You already get “%(topic)s” emails.", topic=name)
    if state.status == "pending":
        return _(
            "Almost done: we sent a link to %(address)s. “%(topic)s” emails start when you "
            "follow it.",
            address=address,
            topic=name,
        )
    return _("Saved: you will no longer get “%(topic)s” emails.", topic=name)


# --- the preferences page ---------------------------------------------------------------------


def _page_context(viewer: Viewer | None, link_form: ManageLinkForm | None = None) -> dict[str, Any]:
    subscriber = viewer.subscriber if viewer else None
    return {
        **_helpers(),
        "viewer": viewer,
        "states": marketing.topic_states(subscriber.id if subscriber else None),
        "events": marketing.history(subscriber.id) if subscriber else [],
        "switch_form": TopicSwitchForm(formdata=None),
        "link_form": link_form or ManageLinkForm(formdata=None),
    }


def _page(link_form: ManageLinkForm | None = None, status: int = 200) -> tuple[str, int]:
    context = _page_context(_viewer(), link_form)
    return render_template("marketing/preferences.html", **context), status


@bp.get("/preferences/marketing")
def preferences() -> tuple[str, int]:
    return _page()


def _session_over() -> Response:
    """The token-scoped session ran out (or there never was one): back to the page, which
    offers a new link; htmx is told to load the whole page, not to swap it into a switch."""
    flash(_("Your link to change these emails has run out. Ask for a new one below."), "info")
    target = url_for("marketing.preferences")
    if wants_fragment():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


@bp.post("/preferences/marketing/topics/<topic>")
def switch_topic(topic: str) -> Response | tuple[str, int]:
    """One topic on (pending until confirmed) or off; a fragment for htmx, else a redirect."""
    try:
        marketing.require_topic(topic)
    except UnknownTopicError:
        return render_error(404)
    form = TopicSwitchForm()
    if not form.validate_on_submit():
        return render_error(400)
    viewer = _viewer()
    if viewer is None:
        return _session_over()
    subscriber = _subscriber_to_change(viewer)
    if form.subscribe.data == "1":
        state = marketing.request_subscription(
            subscriber, topic, source="page", confirm_url=_confirm_url, actor_id=viewer.user_id
        )
    else:
        marketing.unsubscribe(subscriber, topic, source="page", actor_id=viewer.user_id)
        state = marketing.topic_state(subscriber.id, topic)
    message = _saved_message(topic, state, subscriber.email)
    if wants_fragment():
        fresh = _viewer()
        return render_template(
            "marketing/partials/_topic_saved.html",
            **_page_context(fresh),
            state=state,
            message=message,
        ), 200
    flash(message, "success")
    return redirect(url_for("marketing.preferences", _anchor=f"topic-{topic}"), 303)


@bp.post("/preferences/marketing/all")
def unsubscribe_all() -> Response | tuple[str, int]:
    if not ButtonForm().validate_on_submit():
        return render_error(400)
    viewer = _viewer()
    if viewer is None:
        return _session_over()
    subscriber = _subscriber_to_change(viewer)
    marketing.unsubscribe(subscriber, ALL_TOPICS, source="page", actor_id=viewer.user_id)
    flash(
        _(
            "Done: we will send no more marketing emails to %(address)s. Emails about your "
            "account and your requests still come.",
            address=subscriber.email,
        ),
        "success",
    )
    return redirect(url_for("marketing.preferences"), 303)


@bp.post("/preferences/marketing/leave")
def leave() -> Response:
    """End a token-scoped session (a shared computer, a forwarded email)."""
    if ButtonForm().validate_on_submit():
        session.pop(MANAGE_SESSION_KEY, None)
        session.pop(UNDO_SESSION_KEY, None)
        flash(_("You have left these email settings. The link in your email still works."))
    return redirect(url_for("marketing.preferences"), 303)


# --- a manage link by email -------------------------------------------------------------------


def _email_link_limit() -> str:
    return current_app.config["SETTINGS"].email_link_rate_limit


def _address_key() -> str:
    # Per address, so nobody can fill someone's mailbox with links from many places...
    address = marketing.normalise_email(request.form.get("email") or "")[:254]
    return f"marketing-link|{address}"


def _visitor_key() -> str:
    # ... and per visitor, so one place cannot send links to many addresses.
    return f"marketing-link-from|{request.remote_addr}"


@bp.post("/preferences/marketing/link")
@limiter.limit(_email_link_limit, methods=["POST"], key_func=_address_key)
@limiter.limit(_email_link_limit, methods=["POST"], key_func=_visitor_key)
def request_link() -> Response | tuple[str, int]:
    form = ManageLinkForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            return render_error(400, *map(str, CSRF_TEXT))
        return _page(link_form=form, status=400)
    marketing.send_manage_link(
        form.email.data,
        link_url=lambda token: _absolute("marketing.open_link", token=token),
    )
    # The same answer whether or not the address is on the list.
    flash(
        _(
            "If %(address)s is on our mailing list, a link to choose its marketing emails is "
            "on its way there. The link works for 60 minutes. Nothing arrived? Check the "
            "spelling and your spam folder.",
            address=form.email.data,
        ),
        "success",
    )
    return redirect(url_for("marketing.preferences"), 303)


@bp.get("/preferences/marketing/link/<token>")
def open_link(token: str) -> Response | tuple[str, int]:
    """The emailed manage link: starts the token-scoped session, then shows the page."""
    try:
        subscriber = marketing.read_manage_link_token(token)
    except MarketingError as error:
        return _link_error(error)
    _start_manage_session(subscriber.id)
    return redirect(url_for("marketing.preferences"), 303)


# --- double opt-in ----------------------------------------------------------------------------


@bp.route("/preferences/marketing/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Response | tuple[str, int]:
    """GET shows what the button will start (mail scanners open links); POST starts it."""
    if request.method == "POST":
        return _confirm(token)
    try:
        pending = marketing.check_confirmation(token)
    except MarketingError as error:
        return _link_error(error)
    return render_template(
        "marketing/confirm.html",
        **_helpers(),
        pending=pending,
        masked_address=mask_email(pending.subscriber.email),
        token=token,
    ), 200


def _confirm(token: str) -> Response | tuple[str, int]:
    if not ButtonForm().validate_on_submit():
        return render_error(400, *map(str, CSRF_TEXT))
    try:
        pending = marketing.confirm_subscription(token)
    except MarketingError as error:
        return _link_error(error)
    # Following the link proved the mailbox is theirs: let them see and change the rest.
    _start_manage_session(pending.subscriber.id)
    flash(
        _(
            "Confirmed: you will get “%(topic)s” emails at %(address)s. You can stop them "
            "at any time, here or with the link in every one of them.",
            topic=marketing_topic_name(pending.topic.key),
            address=pending.subscriber.email,
        ),
        "success",
    )
    return redirect(url_for("marketing.preferences", _anchor=f"topic-{pending.topic.key}"), 303)


# --- unsubscribe links ------------------------------------------------------------------------


def _link_error(error: Exception) -> tuple[str, int]:
    """The page for a link that cannot be used, with a way forward on it."""
    if isinstance(error, UnknownTopicError):
        return render_error(
            404,
            _("We do not send emails on this topic"),
            _(
                "The link names a topic we no longer have, so there is nothing to stop. "
                "You can choose your emails on the marketing emails page."
            ),
        )
    if isinstance(error, SubscriberGoneError):
        return render_template("marketing/nothing.html"), 200
    if isinstance(error, LinkUsedError):
        return render_error(
            410,
            _("This link has already been used"),
            _(
                "This link has already confirmed the subscription, or a newer link has been "
                "sent since. Use the newest email, or choose your emails on the marketing emails "
                "page."
            ),
        )
    expired = isinstance(error, LinkExpiredError)
    return render_template(
        "marketing/link_invalid.html",
        expired=expired,
        link_form=ManageLinkForm(formdata=None),
    ), (410 if expired else 400)


def _one_click_limit() -> str:
    return current_app.config["SETTINGS"].one_click_rate_limit


def _token_key() -> str:
    # Per link, not per address: one-click posts come from a few mail providers' servers,
    # which must be able to send many different people's requests.
    token = (request.view_args or {}).get("token", "")
    return f"unsubscribe|{token[:100]}"


def _plain(text: str, status: int) -> Response:
    response = make_response(text + "\n", status)
    response.mimetype = "text/plain"
    return response


def _one_click(token: str) -> Response:
    """RFC 8058: a mail program posts `List-Unsubscribe=One-Click` for its user.

    The answers are read by the mail program, never shown to a person, so they are short,
    in English, and made without a template, a locale or a session.
    """
    without_session()
    if request.form.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
        return _plain("Bad request: the body must be List-Unsubscribe=One-Click.", 400)
    try:
        subscriber, scope = marketing.subscriber_for_token(token)
    except LinkInvalidError:
        return _plain("Bad request: this unsubscribe link is not valid.", 400)
    except UnknownTopicError:
        return _plain("Not found: there is no such topic.", 404)
    except SubscriberGoneError:
        return _plain("Nothing to unsubscribe: this address is not on our list.", 200)
    marketing.unsubscribe(subscriber, scope, source="one_click")
    return _plain("Unsubscribed.", 200)


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # the one-click POST has no token by design; the form's is checked below
@limiter.limit(_one_click_limit, methods=["POST"], key_func=_token_key)
def unsubscribe(token: str) -> Response | tuple[str, int]:
    if request.method == "POST" and ONE_CLICK_FIELD in request.form:
        return _one_click(token)
    try:
        subscriber, scope = marketing.subscriber_for_token(token)
    except MarketingError as error:
        return _link_error(error)
    if request.method == "POST":
        return _unsubscribe_by_button(token, subscriber, scope)
    return render_template(
        "marketing/unsubscribe.html",
        **_unsubscribe_context(token, subscriber, scope),
    ), 200


def _unsubscribe_context(token: str, subscriber: MarketingSubscriber, scope: str) -> dict[str, Any]:
    states = [
        state
        for state in marketing.topic_states(subscriber.id)
        if scope in (ALL_TOPICS, state.topic.key)
    ]
    return {
        **_helpers(),
        "token": token,
        "scope": scope,
        "masked_address": mask_email(subscriber.email),
        "running": [state for state in states if state.is_on],
    }


def _unsubscribe_by_button(
    token: str, subscriber: MarketingSubscriber, scope: str
) -> Response | tuple[str, int]:
    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        return render_error(400, *map(str, CSRF_TEXT))
    result = marketing.unsubscribe(subscriber, scope, source="link")
    # Only this browser, and only for a while, may undo it: the link alone cannot resubscribe.
    session[UNDO_SESSION_KEY] = {
        "s": subscriber.id,
        "scope": scope,
        "topics": list(result.stopped),
        "until": int(time.time()) + UNDO_SECONDS,
    }
    return redirect(url_for("marketing.unsubscribed", token=token), 303)


def _undoable(subscriber: MarketingSubscriber, scope: str) -> list[str]:
    data = session.get(UNDO_SESSION_KEY)
    if (
        not isinstance(data, dict)
        or data.get("s") != subscriber.id
        or data.get("scope") != scope
        or int(data.get("until", 0)) < time.time()
    ):
        return []
    return [key for key in data.get("topics", []) if key in marketing.topics()]


@bp.get("/unsubscribe/<token>/done")
def unsubscribed(token: str) -> Response | tuple[str, int]:
    try:
        subscriber, scope = marketing.subscriber_for_token(token)
    except MarketingError as error:
        return _link_error(error)
    context = _unsubscribe_context(token, subscriber, scope)
    if context["running"]:  # undone meanwhile: the page that says what runs, and offers to stop
        return redirect(url_for("marketing.unsubscribe", token=token), 303)
    undo_names = [marketing_topic_name(key) or key for key in _undoable(subscriber, scope)]
    return render_template("marketing/unsubscribed.html", **context, undo_names=undo_names), 200


@bp.post("/unsubscribe/<token>/undo")
def undo(token: str) -> Response | tuple[str, int]:
    if not ButtonForm().validate_on_submit():
        return render_error(400, *map(str, CSRF_TEXT))
    try:
        subscriber, scope = marketing.subscriber_for_token(token)
    except MarketingError as error:
        return _link_error(error)
    topics = _undoable(subscriber, scope)
    if not topics:
        return render_error(
            410,
            _("This can no longer be undone"),
            _(
                "Undo works for 30 minutes, in the browser you unsubscribed with. To get these "
                "emails again, switch them on again on the marketing emails page: we send a "
                "link to confirm."
            ),
        )
    restored = marketing.resubscribe(subscriber, topics, source="link")
    session.pop(UNDO_SESSION_KEY, None)
    names = ", ".join(marketing_topic_name(key) or key for key in restored)
    if restored:
        flash(_("Undone. You will get these emails again: %(topics)s.", topics=names), "success")
    return redirect(url_for("marketing.unsubscribe", token=token), 303)


@bp.get("/unsubscribe/<token>/manage")
def manage(token: str) -> Response | tuple[str, int]:
    """All topics of the link's address, without signing in: a 30-minute session for them."""
    try:
        subscriber, _scope = marketing.subscriber_for_token(token)
    except MarketingError as error:
        return _link_error(error)
    _start_manage_session(subscriber.id)
    return redirect(url_for("marketing.preferences"), 303)
