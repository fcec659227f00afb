"""Proof that no visible text escapes translation: every page and every email, rendered in a
pseudo-locale (tests/support/pseudo.py), shows no interface word outside the markers.

The pseudo catalog turns each message of messages.pot (and of a fresh extraction) into
"⟦Áççéñţéð ţéẋţ ṗáð⟧", with the placeholders left outside the markers so that what fills them
is checked too. A page or an email then fails on any text outside the markers that contains
letters, unless it is data:

- the content of <time>, <code>, <kbd>, <samp>, of translate="no" elements and of elements
  with their own `lang` (language names in the menu, a person's prompt marked with its
  language); <script>, <style>, <template> and comments are not visible at all;
- words Babel writes itself (month and day names, time zones, country and language names);
- email addresses, URLs, and names from the deployment: the controller's name, postal address
  and sender, and the authorities' names (proper names, left out of the catalog on purpose);
- the people's own data: every text value of the data map's tables as stored, read from the
  database after the demo seed (names, prompts, file names, device names, ...). Not the codes
  the app puts in words (a status, a purpose, a language): those must reach the page
  translated.

Visible attributes are checked like text: title, aria-label, alt, placeholder and the value
of <input type=submit|button|reset>.

Known escapes are listed in KNOWN_UNTRANSLATED with where they come from; each must still be
seen (a fixed one fails the test until it is removed from the list), so the list can only
shrink.

Pages: every GET route without arguments for a visitor and two demo accounts (one in the EU,
one in California with a deletion scheduled), the data pages of every category, requests in
every state, the privacy team's pages, the pages behind emailed links (good and bad tokens),
and forms sent with errors or with effect (htmx fragments and flashes). Emails: every template
under templates/emails/ with a context like its callers give. The demo seed and the objects
are made once per module and database backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from app import create_app
from app.config import PROJECT_ROOT
from app.datamap import get_datamap
from app.extensions import db
from app.jurisdictions import GLOBAL_DEFAULT, RULES
from app.models import DataRequest, Export, MarketingSubscriber, Prompt, User
from app.services import exports as export_service
from app.services import marketing
from app.services import profile as profile_service
from app.services import requests as request_service
from app.services.demo import DEMO, DEMO2, STAFF, seed_demo
from app.services.erasure import erasure_plan
from app.services.mail import list_outbox, render_mail
from app.services.notice import get_notice
from app.web import i18n
from app.web.data import VALUE_NAMES
from tests.conftest import settings_for_tests
from tests.integration.test_pages import _simple_get_paths
from tests.support.databases import delete_all_rows, dispose_engines
from tests.support.mailbox import plain_text
from tests.support.pseudo import (
    PSEUDO_LOCALE,
    Allowed,
    Finding,
    forget_pseudo_translations,
    pseudo_text,
    untranslated_html,
    untranslated_text,
    use_pseudo_locale,
    write_pseudo_translations,
)
from tests.support.requests import confirmation_token, seeded_user
from tests.support.web import login, post_form

# --- known escapes ----------------------------------------------------------------------------
# Visible text that does not pass through gettext today: ("pages" or "emails", a regular
# expression the whole reported text matches) -> where it comes from. Fix the code, then remove
# the entry: an entry that no longer matches anything fails the test.
KNOWN_UNTRANSLATED: dict[tuple[str, str], str] = {}

EMAIL_TEMPLATES = PROJECT_ROOT / "templates" / "emails"
DETAILS = "My billing country is wrong: it says Germany, it should say Austria."
REGION_CODE = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?")
BAD_TOKEN = "not-a-real-link-token"


@dataclass
class World:
    app: Flask
    allowed: Allowed
    users: dict[str, tuple[str, str]]  # actor -> (email, password)
    paths: dict[str, list[str]] = field(default_factory=dict)  # actor -> extra paths
    forms: list[Form] = field(default_factory=list)  # sent after every page was read


@dataclass(frozen=True)
class Form:
    """A form sent as the browser sends it (with the CSRF token of `page`): the answer, a
    page after the redirect or an htmx fragment, shows messages no GET shows."""

    actor: str
    path: str
    data: dict[str, str] = field(default_factory=dict)
    page: str | None = None  # the page with the form, when not `path`
    htmx: bool = False


# --- the module's data ------------------------------------------------------------------------


def _confirmed(app: Flask, user: User, kind: str, details: str | None = None) -> DataRequest:
    made = request_service.create_for_user(user, kind, details=details)
    outbox = app.config["SETTINGS"].mail_outbox_dir
    return request_service.confirm(confirmation_token(outbox, user.email, made.id))


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _make_objects(app: Flask) -> tuple[dict[str, list[str]], list[Form]]:
    """Everyone reads the pseudo-locale; requests in every state, an export, a pending email
    change and subscription, and the links the emails carry. The extra paths per actor, and
    the forms to send."""
    seed_demo(echo=lambda *_: None)
    for row in db.session.scalars(select(User)):
        row.locale = PSEUDO_LOCALE
    for row in db.session.scalars(select(MarketingSubscriber)):
        row.locale = PSEUDO_LOCALE
    db.session.commit()
    settings = app.config["SETTINGS"]
    a, b, staff = seeded_user(DEMO.email), seeded_user(DEMO2.email), seeded_user(STAFF.email)

    export_service.request_export(a.id, ["account", "prompts"], None, None)
    db.session.commit()  # jobs run inline in tests: built by now, "export ready" sent

    unverified = request_service.create_for_user(a, "question", details=DETAILS)
    opened = _confirmed(app, a, "correct", DETAILS)
    refused = request_service.refuse(
        _confirmed(app, a, "restrict", DETAILS), staff, request_service.REFUSAL_REASONS[0]
    )
    extended = request_service.extend(
        _confirmed(app, a, "object", DETAILS), staff, request_service.EXTENSION_REASONS[0]
    )
    stepped = _confirmed(app, a, "correct", DETAILS)
    request_service.mark_step_done(stepped, staff, request_service.manual_steps("correct")[0])
    done = request_service.complete(_confirmed(app, a, "question", DETAILS), staff)
    scheduled = _confirmed(app, b, "delete_account")  # B's pages show the deletion banner
    by_email = request_service.create_by_email(
        "question", "reader@example.com", details=DETAILS, locale=PSEUDO_LOCALE
    )
    spare = [Prompt(user_id=a.id, text="a prompt made to be deleted", language="en") for _ in "ab"]
    db.session.add_all(spare)
    db.session.commit()

    change_tokens: list[str] = []
    profile_service.request_email_change(
        a,
        new_email="alex.new@example.com",
        password=DEMO.password,
        secret_key=settings.secret_key,
        confirm_url=lambda token: change_tokens.append(token) or token,
        profile_url=settings.base_url + "/profile",
    )
    subscription_tokens: list[str] = []
    own = marketing.subscriber_for_user(a.id)
    reader = marketing.find_subscriber("reader@example.com")
    assert own is not None and reader is not None
    marketing.request_subscription(
        own,
        "offers",
        source="page",
        confirm_url=lambda token: subscription_tokens.append(token) or token,
    )

    a_requests = [unverified, opened, refused, extended, stepped, done]
    a_paths = [f"/requests/{r.id}" for r in a_requests]
    a_paths += [f"/requests/new/{kind}" for kind in request_service.KINDS]
    a_paths.append(f"/requests/new/appeal?of={refused.id}")
    exports = db.session.scalars(select(Export.id).where(Export.user_id == a.id))
    a_paths += [f"/exports/{export_id}/status" for export_id in exports]
    for category in get_datamap().database_categories:
        a_paths.append(f"/data/{category.key}")
        item = _first_item(category.model, category.user_column, a.id)
        if item is not None:
            a_paths.append(f"/data/{category.key}/{item}")
            if category.item_deletion:
                a_paths.append(f"/data/{category.key}/{item}/delete")
        a_paths.append(f"/data/{category.key}/delete-older?before=2025-01-01")
    every_request = [*a_requests, scheduled, by_email]
    staff_paths = ["/admin/requests", "/admin/requests?status=done"]
    for found in every_request:
        staff_paths.append(f"/admin/requests/{found.id}")
    staff_paths += [f"/admin/requests/{opened.id}/{action}" for action in ("step", "refuse")]

    verify = confirmation_token(settings.mail_outbox_dir, a.email, unverified.id)
    visitor_paths = (
        [f"/requests/new/{kind}" for kind in request_service.KINDS]
        + [f"/policy/versions/{version.version}" for version in get_notice().versions]
        + [
            f"/requests/confirm/{verify}",
            f"/requests/status/{request_service.status_token(by_email.id)}",
            f"/requests/status/{request_service.status_token(opened.id)}",
            _path(request_service.cancel_url(scheduled.id)),
            f"/profile/email/confirm/{change_tokens[-1]}",
            f"/preferences/marketing/confirm/{subscription_tokens[-1]}",
            f"/preferences/marketing/link/{marketing.manage_link_token(reader.id)}",
            f"/unsubscribe/{marketing.unsubscribe_token(reader.id, '*')}",
            f"/unsubscribe/{marketing.unsubscribe_token(reader.id, 'newsletter')}/manage",
            f"/unsubscribe/{marketing.unsubscribe_token(reader.id, 'newsletter')}/done",
            *(
                f"{prefix}/{BAD_TOKEN}"
                for prefix in (
                    "/requests/confirm",
                    "/requests/status",
                    "/requests/cancel",
                    "/profile/email/confirm",
                    "/preferences/marketing/confirm",
                    "/preferences/marketing/link",
                    "/unsubscribe",
                )
            ),
            *(f"/dev/outbox/{path.name}" for path in list_outbox()),
        ]
    )
    b_paths = [f"/requests/{scheduled.id}", "/requests/new/delete_account"]
    paths = {"visitor": visitor_paths, "A": a_paths, "B": b_paths, "staff": staff_paths}

    unsubscribe = f"/unsubscribe/{marketing.unsubscribe_token(reader.id, '*')}"
    cancel = _path(request_service.cancel_url(scheduled.id))
    forms = [
        # Answers with errors: the messages of the form validators.
        Form("visitor", "/login", {"email": DEMO.email, "password": "not the password"}),
        Form("visitor", "/login", {"email": "not-an-address", "password": ""}),
        Form("visitor", "/requests/new/question", {"email": "not-an-address", "details": ""}),
        Form("A", "/profile", {"name": "x" * 500, "billing_country": "XX"}),
        Form("A", "/profile/email", {"new_email": "not-an-address"}, page="/profile"),
        # Answers that say what was done (htmx fragments, or a page with a flash).
        Form("A", "/preferences/cookies", {"decision": "reject_all", "origin": "settings"}),
        Form(
            "A",
            "/preferences/cookies",
            {"decision": "accept_all", "origin": "settings"},
            htmx=True,
        ),
        Form(
            "A",
            "/preferences/marketing/topics/newsletter",
            {"subscribe": "0"},
            page="/preferences/marketing",
            htmx=True,
        ),
        Form("A", "/data/model-improvement", {"allowed": "0"}, page="/data/prompts", htmx=True),
        Form("A", f"/data/prompts/{spare[0].id}/delete", htmx=True),
        Form("A", f"/data/prompts/{spare[1].id}/delete"),
        Form("A", f"/requests/{unverified.id}/resend", page=f"/requests/{unverified.id}"),
        Form("A", "/profile/email/cancel", page="/profile"),
        Form(
            "visitor", "/requests/new/question", {"email": "reader@example.com", "details": DETAILS}
        ),
        Form("visitor", unsubscribe),
        Form("visitor", cancel),  # last: B's deletion is cancelled
    ]
    return paths, forms


def _first_item(model: type | None, user_column: str | None, user_id: int) -> int | None:
    if model is None or user_column is None or user_column == "id":
        return None
    return db.session.scalar(
        select(model.id).where(getattr(model, user_column) == user_id).order_by(model.id)  # type: ignore[attr-defined]
    )


def _strings(value: Any) -> Iterator[str]:
    """A stored value as the data pages show it: text as it is, a small mapping (an image's
    settings) value by value; a list is not shown as stored, so it is not data."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def people_data() -> set[str]:
    """Every text value in the data map's tables, as stored: what people wrote or the
    platform recorded about them. Except the codes the app puts in words (a status, a
    purpose, a language ...): those must reach the page translated, unless they are a
    language-neutral region code ("DE", "US-CA")."""
    coded = {*VALUE_NAMES, "status"}
    values: set[str] = set()
    for category in get_datamap().database_categories:
        model: type[DeclarativeBase] = category.model  # type: ignore[assignment]
        columns = model.__table__.columns  # type: ignore[attr-defined]
        for row in db.session.execute(select(*columns)):
            for column, value in zip(columns, row, strict=True):
                found = _strings(value)
                if column.name in coded:
                    found = (s for s in found if REGION_CODE.fullmatch(s))
                values.update(found)
    return values


def _deployment_literals(app: Flask) -> set[str]:
    """Names that stay as they are in every language: the controller's name, postal address
    and sender, and the authorities' names (proper names: the rules table's extractor leaves
    them out of the catalog on purpose, see app/datamap/babel_extract.py)."""
    settings = app.config["SETTINGS"]
    names = {settings.controller_name, settings.controller_address, settings.mail_from}
    for rules in (GLOBAL_DEFAULT, *RULES.values()):
        if rules.authority is not None:
            names.add(rules.authority.name)
    return names


@pytest.fixture(scope="module")
def world(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    _cleanup_engine: Engine,
    german_catalog: Any,
) -> Iterator[World]:
    del german_catalog  # compiled catalogs, as for every app the tests make
    workdir = tmp_path_factory.mktemp("pseudo-locale")
    pseudo_dir = write_pseudo_translations(workdir / "translations")
    app = create_app(settings_for_tests(database_url, workdir / "data"))
    app.config["TESTING"] = True
    try:
        with pytest.MonkeyPatch.context() as patch:
            # The app offers only the languages it ships; for this module it offers "eo".
            patch.setitem(i18n.LANGUAGES, PSEUDO_LOCALE, "Esperanto (pseudo)")
            use_pseudo_locale(app, pseudo_dir)
            with app.app_context():
                paths, forms = _make_objects(app)
                allowed = Allowed(data=people_data(), literals=_deployment_literals(app))
            users = {
                "A": (DEMO.email, DEMO.password),
                "B": (DEMO2.email, DEMO2.password),
                "staff": (STAFF.email, STAFF.password),
            }
            yield World(app, allowed, users, paths, forms)
    finally:
        forget_pseudo_translations(app)
        dispose_engines(app)
        delete_all_rows(_cleanup_engine)


# --- checking ---------------------------------------------------------------------------------


def _client(world: World, actor: str) -> FlaskClient:
    client = world.app.test_client()
    client.set_cookie(i18n.LANGUAGE_COOKIE, PSEUDO_LOCALE)
    if actor in world.users:
        email, password = world.users[actor]
        assert login(client, email, password).status_code == 303, f"{actor} cannot sign in"
    return client


def _check_pages(
    world: World, actor: str, paths: Iterable[str], found: dict[tuple[str, str], list[str]]
) -> int:
    client = _client(world, actor)
    checked = 0
    for path in dict.fromkeys(paths):
        response = client.get(path, follow_redirects=True)
        assert response.status_code < 500, f"{actor} GET {path} answered {response.status_code}"
        if response.mimetype != "text/html":
            continue
        page = response.get_data(as_text=True)
        assert f'<html lang="{PSEUDO_LOCALE}"' in page, f"{actor} {path}: not in the pseudo-locale"
        checked += 1
        allowed = world.allowed
        if path.startswith("/dev/outbox/"):
            allowed = allowed.with_data(_message_as_sent(world.app, path.rsplit("/", 1)[1]))
        for finding in untranslated_html(page, allowed):
            found.setdefault(_key("pages", finding), []).append(f"{actor} {path}")
    return checked


def _check_forms(world: World, found: dict[tuple[str, str], list[str]]) -> int:
    clients: dict[str, FlaskClient] = {}
    checked = 0
    for form in world.forms:
        if form.actor not in clients:
            clients[form.actor] = _client(world, form.actor)
        client = clients[form.actor]
        headers = {"HX-Request": "true"} if form.htmx else {}
        response = post_form(
            client,
            form.path,
            form.data,
            form_page=form.page,
            headers=headers,
            follow_redirects=not form.htmx,
        )
        where = f"{form.actor} POST {form.path}{' (htmx)' if form.htmx else ''}"
        assert response.status_code < 500, f"{where} answered {response.status_code}"
        if response.mimetype != "text/html" or not response.get_data():
            continue
        checked += 1
        for finding in untranslated_html(response.get_data(as_text=True), world.allowed):
            found.setdefault(_key("pages", finding), []).append(where)
    return checked


def _message_as_sent(app: Flask, name: str) -> list[str]:
    """What the demo outbox shows of a message is data there: the message as it was sent
    (its wording is checked by test_every_email_is_translated). Not its date: the page shows
    that itself."""
    with (app.config["SETTINGS"].mail_outbox_dir / name).open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    return [message["Subject"], message["To"], *plain_text(message).splitlines()]


def _key(scope: str, finding: Finding) -> tuple[str, str]:
    where = "" if finding.where == "text" else f"{finding.where} "
    return scope, f"{where}{finding.text}"


def _known(key: tuple[str, str]) -> tuple[str, str] | None:
    scope, text = key
    return next(
        (
            known
            for known in KNOWN_UNTRANSLATED
            if known[0] == scope and re.fullmatch(known[1], text)
        ),
        None,
    )


def _report(found: dict[tuple[str, str], list[str]], scope: str) -> None:
    new = {key: places for key, places in found.items() if _known(key) is None}
    seen = {_known(key) for key in found}
    fixed = [key for key in KNOWN_UNTRANSLATED if key[0] == scope and key not in seen]
    lines = [f"  {text!r}  on {', '.join(places[:3])}" for (_, text), places in sorted(new.items())]
    assert not new, "text that escaped translation:\n" + "\n".join(lines)
    assert not fixed, f"translated now, remove from KNOWN_UNTRANSLATED: {fixed}"


def test_the_pseudo_catalog_keeps_what_the_program_fills_in() -> None:
    message = 'Write to <a href="mailto:%(email)s">%(email)s</a> &amp; wait %(days)d days.'
    pseudo = pseudo_text(message, python_format=True)
    assert pseudo.startswith('⟦Ŵŕíţé ţö <a href="mailto:%(email)s">⟧%(email)s⟦</a> &amp; ')
    assert "⟧%(days)d⟦" in pseudo
    plain = "Download a copy of your data"
    inner = pseudo_text(plain).removeprefix("⟦").removesuffix("⟧")
    assert inner.startswith("Ðöŵñłöáð á çöṗý öƒ ýöüŕ ðáţá ")
    assert len(inner) >= len(plain) * 1.3
    assert pseudo_text("Being prepared: %(percent)s%% done.", python_format=True).count("%%") == 1


def test_the_check_finds_words_outside_the_markers() -> None:
    allowed = Allowed(data={"Alex Morgan"}, literals={"GPT Image 2"})
    page = (
        '<html lang="eo"><head><title>⟦Ṗŕíṽáçý⟧ · GPT Image 2</title><style>p {}</style></head>'
        "<body><h1>⟦Ĥéłłö, ⟧Alex Morgan⟦!⟧</h1><p>Download</p>"
        '<p>⟦Ŕéáð <a href="/policy">ţĥé ñöţíçé</a> ţöðáý⟧</p>'
        '<a title="Open" href="/">⟦Ĥöṁé⟧</a><img alt="A chart" src="/x.png">'
        '<input type="submit" value="Send"><input type="text" value="typed by someone">'
        "<p>⟦Ýöüŕ ŕéĝíöñ: ⟧Everywhere else⟦.⟧</p>"
        '<time datetime="2025-01-01">1 January 2025</time><code>pybabel</code>'
        '<span lang="de">Deutsch</span><span translate="no">Acme</span>'
        "<script>var label = 'not shown';</script><!-- a comment --></body></html>"
    )
    found = {(finding.where, finding.text) for finding in untranslated_html(page, allowed)}
    assert found == {
        ("text", "Download"),
        ("<a title>", "Open"),
        ("<img alt>", "A chart"),
        ("<input value>", "Send"),
        ("text", "Everywhere else"),
    }
    cut_short = untranslated_text("⟦Ýöüŕ ŕéǫüéšţ íš ðö", allowed)
    assert [finding.where for finding in cut_short] == ["markers"]
    assert (
        untranslated_text("--\nGPT Image 2, privacy@example.com\nhttps://x.example/a", allowed)
        == []
    )


def test_every_page_is_translated(world: World) -> None:
    found: dict[tuple[str, str], list[str]] = {}
    simple = [*_simple_get_paths(world.app), "/no/such/page"]
    checked = _check_pages(world, "visitor", [*simple, *world.paths["visitor"]], found)
    checked += _check_pages(world, "A", [*simple, *world.paths["A"]], found)
    checked += _check_pages(world, "B", [*simple, *world.paths["B"]], found)
    checked += _check_pages(world, "staff", world.paths["staff"], found)
    checked += _check_forms(world, found)
    wrong_method = _client(world, "visitor").post("/healthz")
    assert wrong_method.status_code == 405
    for finding in untranslated_html(wrong_method.get_data(as_text=True), world.allowed):
        found.setdefault(_key("pages", finding), []).append("visitor POST /healthz")
    assert checked > 100
    _report(found, "pages")


# --- emails -----------------------------------------------------------------------------------


def _mail_contexts(app: Flask) -> dict[str, dict[str, Any]]:
    """A plausible context for each email, as its callers in app/services give it."""
    settings = app.config["SETTINGS"]
    base = settings.base_url
    now = datetime.now(UTC)
    request = SimpleNamespace(
        id=7, kind="correct", cooling_off_until=now + timedelta(days=14), due_at=now
    )
    deletion = SimpleNamespace(
        id=8, kind="delete_account", cooling_off_until=now + timedelta(days=14), due_at=now
    )
    authority = request_service.jurisdiction_of(
        SimpleNamespace(jurisdiction="US-CA")  # type: ignore[arg-type]
    ).rules.authority
    follow = {"status_url": None, "requests_url": f"{base}/requests/7", "authority": authority}
    by_link = {**follow, "status_url": f"{base}/requests/status/a-token"}
    topic = marketing.topics()["newsletter"]
    subscriber = {
        "topic_name": topic.name,
        "address": "reader@example.com",
        "unsubscribe_url": f"{base}/unsubscribe/a-token",
        "manage_url": f"{base}/unsubscribe/a-token/manage",
    }
    return {
        "mail_test": {},
        "export_ready": {"export_url": f"{base}/exports"},
        "request_verify": {
            "data_request": request,
            "confirm_url": f"{base}/requests/confirm/a-token",
            "link_hours": 24,
        },
        "request_received": {"data_request": request, **by_link},
        "request_done": {"data_request": request, "outcome": "done", **follow},
        "request_refused": {"data_request": request, "reason": "identity", **follow},
        "request_extended": {"data_request": request, "reason": "complex", **by_link},
        "deletion_scheduled": {
            "data_request": deletion,
            "cancel_url": f"{base}/requests/cancel/a-token",
            **follow,
        },
        "deletion_cancelled": {"data_request": deletion, **follow},
        "erasure_done": {"data_request": deletion, "plan": erasure_plan(), **follow},
        "email_change_confirm": {
            "new_email": "alex.new@example.com",
            "confirm_url": f"{base}/profile/email/confirm/a-token",
        },
        "email_address_in_use": {"address": "alex@example.com"},
        "email_change_notice": {
            "masked_new_email": profile_service.mask_email("alex.new@example.com"),
            "profile_url": f"{base}/profile",
        },
        "email_changed": {
            "recipient": "old",
            "new_email": profile_service.mask_email("alex.new@example.com"),
            "profile_url": f"{base}/profile",
        },
        "marketing_confirm": {
            "topic_name": topic.name,
            "topic_description": topic.description,
            "address": "reader@example.com",
            "confirm_url": f"{base}/preferences/marketing/confirm/a-token",
            "valid_days": 7,
        },
        "marketing_manage_link": {
            "manage_url": f"{base}/preferences/marketing/link/a-token",
            "valid_minutes": 60,
        },
        # A campaign's own words come already in the reader's language (here: the pseudo one).
        "marketing_newsletter": {
            **subscriber,
            "headline": pseudo_text("What is new this month"),
            "paragraphs": [pseudo_text("Three new styles and a faster editor.")],
        },
    }


def test_every_email_is_translated(world: World) -> None:
    templates = sorted(
        path.name
        for path in EMAIL_TEMPLATES.iterdir()
        if (path / "subject.txt").is_file() and (path / "body.html").is_file()
    )
    found: dict[tuple[str, str], list[str]] = {}
    with world.app.app_context():
        contexts = _mail_contexts(world.app)
        assert sorted(contexts) == templates, "give every email template a context here"
        variants = [(name, contexts[name]) for name in templates]
        # The other branch of the templates that choose by their context.
        variants.append(("email_changed", {**contexts["email_changed"], "recipient": "new"}))
        variants.append(("request_refused", {**contexts["request_refused"], "authority": None}))
        for name, context in variants:
            subject, text, html = render_mail(name, PSEUDO_LOCALE, **context)
            assert "⟦" in subject, f"{name}: the subject is not in the pseudo-locale"
            for part, findings in (
                ("subject", untranslated_text(subject, world.allowed)),
                ("body.txt", untranslated_text(text, world.allowed)),
                ("body.html", untranslated_html(html, world.allowed)),
            ):
                for finding in findings:
                    found.setdefault(_key("emails", finding), []).append(f"{name}/{part}")
    _report(found, "emails")
