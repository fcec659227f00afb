"""Every form, posted with random and hostile values (hypothesis).

`FUZZ` names, per POST endpoint of the URL map, who posts it (a visitor, a person signed in
with a fresh password, a member of the privacy team), the fields of its form (read from the
WTForms class where the view has one) and a few valid values that hypothesis mixes with
hostile ones: very long text, control characters, mixed scripts, SQL and HTML/template
injection. Each answer is held to three rules:

- never 5xx;
- a 4xx (refused) changes nothing in the database: every row of every table, audit included,
  is the same after it as before;
- hostile markup is never sent back unescaped, on the answer or on the pages that show what
  was stored; and what was stored is shown exactly, escaped (so "{{7*7}}" stays as typed).

A POST route without an entry fails `test_every_post_route_is_fuzzed`. The JSON API (PUT)
is fuzzed against its OpenAPI file in test_fuzz_api.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.engine import Engine
from werkzeug.test import TestResponse
from wtforms.fields.core import UnboundField

from app import create_app
from app.extensions import db
from app.models import DataRequest, Prompt, User
from app.services import profile as profile_service
from app.services import requests as request_service
from app.services.consent import get_catalogue
from app.web.consent import DECISIONS, ORIGINS, ConsentForm
from app.web.data import ModelImprovementForm
from app.web.forms import LanguageForm, LoginForm, ReauthForm
from app.web.i18n import LANGUAGES
from app.web.marketing import ManageLinkForm, TopicSwitchForm
from app.web.policy import DismissNoticeForm
from app.web.profile import EmailChangeForm, PlaceForm, ProfileForm
from app.web.requests import EmailRequestForm
from tests.conftest import DEFAULT_PASSWORD, password_hash, settings_for_tests
from tests.support.databases import delete_all_rows, dispose_engines
from tests.support.requests import confirmation_token
from tests.support.web import SESSION_COOKIE, session_and_token

ANONYMOUS, PERSON, STAFF = "anonymous", "person", "staff"
PERSON_EMAIL, STAFF_EMAIL = "fuzz-person@example.com", "fuzz-staff@example.com"


@dataclass(frozen=True)
class Fuzzed:
    """A path or query value that hypothesis fills too: this valid one, or a hostile one."""

    valid: str | None = None


TOKEN = Fuzzed()  # an emailed link's token: always made up

# Hostile pieces; the strategy joins them with random text.
SQL = ("' OR 1=1 --", "'; DROP TABLE users; --", "1; SELECT pg_sleep(0)--", "\\'")
MARKUP = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</textarea><svg onload=alert(1)>",
    "javascript:alert(1)",
)
# Every markup piece at once, and a template expression that must not become 49.
ALL_MARKUP = " ".join((*MARKUP, "{{7*7}}"))
TEMPLATE = ("{{7*7}}", "{% raw %}", "${7*7}", "%(name)s", "%s%n")
CONTROL = ("\x00", "\x1b[31m", "\u202e", "\x7f", "\r\n", "\t", "\u2028", "\ufeff")
SCRIPTS = ("مرحبا بالعالم", "漢字かなカナ", "👩‍👩‍👧‍👦🏳️‍🌈", "e\u0301\u0308\u20dd", "Ωμέγα", "Ж")
PIECES = (*SQL, *MARKUP, *TEMPLATE, *CONTROL, *SCRIPTS)
# Email addresses that pass validation yet carry characters a template must escape.
HOSTILE_EMAILS = (
    "{{7*7}}@example.com",
    "o'hara+x@example.com",
    "用户@例子.example",
    "a&b@example.com",
)


# --- the table --------------------------------------------------------------------------------


Fields = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Shown:
    """A stored text value, and a page (as an actor) that shows it."""

    actor: str
    path: str
    value: str


@dataclass(frozen=True)
class Target:
    actor: str
    # field name -> valid values to mix in (empty: hostile values only); a function for
    # values only known inside the app
    fields: Fields | Callable[[], Fields]
    args: Mapping[str, Any] = field(default_factory=dict)  # a name in World.ids is its id
    query: Mapping[str, Any] = field(default_factory=dict)
    examples: int = 6
    # The typed text this form stores, read back from the database, with where it is shown.
    stored: Callable[[World], list[Shown]] | None = None
    # Free-text fields: each is also posted holding every markup piece, in a valid form.
    texts: tuple[str, ...] = ()


def fields_of(form: type[FlaskForm], **valid: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The form class's fields (what the view reads), each with its valid values."""
    names = [n for n in dir(form) if isinstance(getattr(form, n), UnboundField)]
    unknown = set(valid) - set(names)
    assert not unknown, f"{form.__name__} has no field {unknown}"
    return {name: valid.get(name, ()) for name in names}


def _profile(world: World) -> list[Shown]:
    """The person's name and billing address, on the profile page."""
    with world.app.app_context():
        user = db.session.get(User, world.ids["person"])
        address = profile_service.billing_address(world.ids["person"])
        values = [user.name if user else None]
        if address is not None:
            values += [getattr(address, name) for name in profile_service.ADDRESS_FIELDS]
        db.session.remove()
    return [Shown(PERSON, "/profile", value) for value in values if value]


def _pending_address(world: World) -> list[Shown]:
    with world.app.app_context():
        pending = profile_service.pending_email_change(world.ids["person"])
        db.session.remove()
    return [Shown(PERSON, "/profile", pending.new_email)] if pending else []


def _request_details(world: World) -> list[Shown]:
    """The newest request's text: on the team's page, and on its owner's."""
    with world.app.app_context():
        newest = db.session.scalars(select(DataRequest).order_by(DataRequest.id.desc())).first()
        db.session.remove()
    if newest is None or not newest.details:
        return []
    shown = [Shown(STAFF, f"/admin/requests/{newest.id}", newest.details)]
    if newest.user_id == world.ids["person"]:
        shown.append(Shown(PERSON, f"/requests/{newest.id}", newest.details))
    return shown


COUNTRIES = ("DE", "US", "", "FR")
PROFILE = fields_of(
    ProfileForm,
    name=("Ann Example", "Zoë O'Brien"),
    country=COUNTRIES,
    region=("", "CA", "by"),
    locale=tuple(LANGUAGES),
    billing_name=("Ann Example",),
    billing_line1=("Hauptstraße 1",),
    billing_line2=("",),
    billing_city=("Berlin",),
    billing_postal_code=("10115",),
    billing_region=("",),
    billing_country=COUNTRIES,
)
DETAILS_OF_A_REQUEST = ("My name is spelt wrong.", "")
NEXT = ("/", "/profile", "//evil.example", "https://evil.example/")
BUTTON: dict[str, tuple[str, ...]] = {}  # a form that is only a button (CSRF token)


def _consent_fields() -> Fields:
    return fields_of(
        ConsentForm,
        decision=DECISIONS,
        allow=tuple(get_catalogue().optional_keys),
        origin=ORIGINS,
        next=NEXT,
    )


FUZZ: dict[str, tuple[Target, ...]] = {
    "auth.login": (
        Target(
            ANONYMOUS,
            fields_of(
                LoginForm,
                email=(PERSON_EMAIL, *HOSTILE_EMAILS),
                password=(DEFAULT_PASSWORD,),
                next=NEXT,
            ),
            examples=10,
        ),
    ),
    "auth.logout": (Target(PERSON, BUTTON),),
    "auth.reauth": (
        Target(PERSON, fields_of(ReauthForm, password=(DEFAULT_PASSWORD,), next=NEXT), examples=6),
    ),
    "i18n.set_language": (
        Target(PERSON, fields_of(LanguageForm, language=tuple(LANGUAGES), next=NEXT)),
    ),
    "consent.decide": (Target(ANONYMOUS, _consent_fields, examples=8),),
    "consent.do_not_sell": (Target(ANONYMOUS, BUTTON),),
    "region.choose": (
        Target(ANONYMOUS, fields_of(PlaceForm, country=COUNTRIES, region=("", "CA", "by"))),
    ),
    "policy.dismiss_notice": (Target(PERSON, fields_of(DismissNoticeForm, next=NEXT)),),
    "marketing.switch_topic": (
        Target(
            PERSON,
            fields_of(TopicSwitchForm, subscribe=("0", "1")),
            args={"topic": Fuzzed("newsletter")},
        ),
    ),
    "marketing.unsubscribe_all": (Target(PERSON, BUTTON),),
    "marketing.leave": (Target(ANONYMOUS, BUTTON),),
    "marketing.request_link": (
        Target(ANONYMOUS, fields_of(ManageLinkForm, email=HOSTILE_EMAILS), examples=8),
    ),
    "marketing.confirm": (Target(ANONYMOUS, BUTTON, args={"token": TOKEN}),),
    "marketing.undo": (Target(ANONYMOUS, BUTTON, args={"token": TOKEN}),),
    # The one-click POST (RFC 8058) carries no CSRF token by design; the button's form does.
    "marketing.unsubscribe": (
        Target(ANONYMOUS, {"List-Unsubscribe": ("One-Click",)}, args={"token": TOKEN}, examples=8),
    ),
    "profile.save": (
        Target(
            PERSON,
            PROFILE,
            examples=25,
            stored=_profile,
            texts=("name", "billing_name", "billing_line1", "billing_line2", "billing_city"),
        ),
    ),
    "profile.request_email_change": (
        Target(
            PERSON,
            fields_of(
                EmailChangeForm,
                new_email=HOSTILE_EMAILS,
                password=(DEFAULT_PASSWORD,),
            ),
            examples=8,
            stored=_pending_address,
        ),
    ),
    "profile.cancel_email_change": (Target(PERSON, BUTTON),),
    "profile.confirm_email": (Target(ANONYMOUS, BUTTON, args={"token": TOKEN}),),
    "data.model_improvement": (
        Target(PERSON, fields_of(ModelImprovementForm, allowed=("0", "1"))),
    ),
    "data.delete_item": (
        Target(PERSON, BUTTON, args={"category": "prompts", "item_id": "prompt"}, examples=3),
    ),
    "data.delete_older": (
        Target(
            PERSON,
            {"expected_prompts": ("0",), "expected_images": ("0",)},
            args={"category": Fuzzed("prompts")},
            query={"before": Fuzzed("2000-01-01")},
        ),
    ),
    "exports.create": (
        Target(
            PERSON,
            {
                "scope": ("all", "chosen"),
                "category": ("account", "prompts"),
                "from": ("2020-01-01", ""),
                "to": ("2030-01-01", ""),
            },
            examples=10,
        ),
    ),
    "requests.make": (
        Target(
            ANONYMOUS,
            fields_of(EmailRequestForm, email=HOSTILE_EMAILS, details=DETAILS_OF_A_REQUEST),
            args={"kind": Fuzzed("question")},
            examples=15,
            stored=_request_details,
            texts=("details",),
        ),
        Target(
            PERSON,
            {"details": DETAILS_OF_A_REQUEST},
            args={"kind": Fuzzed("correct")},
            examples=15,
            stored=_request_details,
            texts=("details",),
        ),
    ),
    "requests.resend": (Target(PERSON, BUTTON, args={"request_id": "request"}, examples=3),),
    "requests.cancel": (Target(PERSON, BUTTON, args={"request_id": "request"}, examples=3),),
    "requests.confirm": (Target(ANONYMOUS, BUTTON, args={"token": TOKEN}),),
    "requests.cancel_link": (Target(ANONYMOUS, BUTTON, args={"token": TOKEN}),),
    "requests.status_cancel": (Target(ANONYMOUS, BUTTON, args={"token": TOKEN}),),
    "admin.step": (
        Target(
            STAFF,
            {"step": tuple(request_service.manual_steps("correct"))},
            args={"request_id": "open request for step"},
        ),
    ),
    "admin.complete": (
        Target(STAFF, BUTTON, args={"request_id": "open request for complete"}, examples=3),
    ),
    "admin.refuse": (
        Target(
            STAFF,
            {"reason": request_service.REFUSAL_REASONS},
            args={"request_id": "open request for refuse"},
        ),
    ),
    "admin.extend": (
        Target(
            STAFF,
            {"reason": request_service.EXTENSION_REASONS},
            args={"request_id": "open request for extend"},
        ),
    ),
}
# Answered by the API's own checks, against its OpenAPI file (test_fuzz_api.py).
FUZZED_ELSEWHERE = frozenset({"api.set_processing"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STAFF_ACTIONS = ("step", "complete", "refuse", "extend")


# --- the data ---------------------------------------------------------------------------------


@dataclass
class World:
    app: Flask
    cookies: dict[str, str | None]
    csrf: dict[str, str]
    ids: dict[str, int]


def _make_user(email: str, **columns: Any) -> User:
    user = User(email=email, password_hash=password_hash(DEFAULT_PASSWORD), locale="en", **columns)
    db.session.add(user)
    db.session.commit()
    return user


def _open_request(person: User, outbox: Path) -> int:
    opened = request_service.create_for_user(person, "correct", details="my name is wrong")
    request_service.confirm(confirmation_token(outbox, person.email, opened.id))
    return opened.id


def _make_objects(app: Flask) -> dict[str, int]:
    """The two accounts, and the objects the id-bearing routes name (each staff action gets
    its own open request, as one action closes it for the others)."""
    person = _make_user(PERSON_EMAIL, name="Ann Example", country="DE")
    _make_user(STAFF_EMAIL, name="Sam Staff", is_staff=True)
    prompt = Prompt(user_id=person.id, text="a prompt to delete", language="en")
    db.session.add(prompt)
    db.session.commit()
    own = request_service.create_for_user(person, "question", details="a question")
    ids = {"person": person.id, "prompt": prompt.id, "request": own.id}
    outbox = app.config["SETTINGS"].mail_outbox_dir
    for action in STAFF_ACTIONS:
        ids[f"open request for {action}"] = _open_request(person, outbox)
    return ids


def _sign_in(app: Flask) -> tuple[dict[str, str | None], dict[str, str]]:
    cookies: dict[str, str | None] = {}
    tokens: dict[str, str] = {}
    for actor, email in ((ANONYMOUS, None), (PERSON, PERSON_EMAIL), (STAFF, STAFF_EMAIL)):
        cookies[actor], tokens[actor] = session_and_token(
            app.test_client(), email, DEFAULT_PASSWORD
        )
    return cookies, tokens


@pytest.fixture(scope="module")
def world(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    _cleanup_engine: Engine,
    german_catalog: Any,
) -> Iterator[World]:
    """The app (as the `app` fixture makes it) and its data, once per module and backend:
    setting up per test would cost more than the fuzzing. Rows are deleted after the module."""
    del german_catalog  # compiled catalogs, as for every app the tests make
    data_dir = tmp_path_factory.mktemp("fuzz-forms") / "data"
    app = create_app(settings_for_tests(database_url, data_dir))
    app.config["TESTING"] = True
    try:
        with app.app_context():
            ids = _make_objects(app)
            db.session.remove()
        cookies, tokens = _sign_in(app)
        yield World(app, cookies, tokens, ids)
    finally:
        dispose_engines(app)
        delete_all_rows(_cleanup_engine)


def _client(world: World, actor: str) -> FlaskClient:
    """A new browser with a copy of the actor's session (a sign-out stays in it)."""
    client = world.app.test_client()
    cookie = world.cookies[actor]
    if cookie is not None:
        client.set_cookie(SESSION_COOKIE, cookie)
    return client


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the audit log included), in a comparable order."""
    with app.app_context():
        tables = {}
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(table.select()).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
        db.session.remove()
        return tables


def _changes(before: Mapping[str, list[Any]], after: Mapping[str, list[Any]]) -> list[str]:
    return [
        f"{name}: {len(before[name])} -> {len(after[name])} rows"
        + ("" if len(before[name]) != len(after[name]) else " (rows changed)")
        for name in before
        if before[name] != after[name]
    ]


# --- the values -------------------------------------------------------------------------------


def _long(piece: str, length: int) -> str:
    return (piece * (length // len(piece) + 1))[:length]


def hostile_text() -> st.SearchStrategy[str]:
    """Short mixes of hostile pieces and random text, or one piece repeated past 10k."""
    piece = st.one_of(st.sampled_from(PIECES), st.text(max_size=12))
    short = st.lists(piece, min_size=1, max_size=5).map("".join)
    long = st.builds(_long, st.sampled_from(PIECES), st.integers(10_000, 12_000))
    return st.one_of(short, short, long)


@st.composite
def field_values(draw: st.DrawFn, fields: Fields) -> dict[str, str]:
    """A valid form with a few fields spoiled: hostile or left out. (Spoiling every field
    at once would stop at the first check and never reach what is stored.)"""
    names = sorted(fields)
    spoiled = draw(st.sets(st.sampled_from(names), max_size=3)) if names else set()
    values: dict[str, str] = {}
    for name in names:
        if name in spoiled or not fields[name]:
            value = draw(st.one_of(hostile_text(), st.none()))
        else:
            value = draw(st.sampled_from(fields[name]))
        if value is not None:
            values[name] = value
    return values


def place_values(target: Target) -> st.SearchStrategy[dict[str, str]]:
    """The path and query values marked Fuzzed: the valid one, or a hostile one."""
    options = {}
    for name, value in {**target.args, **target.query}.items():
        if isinstance(value, Fuzzed):
            valid = [st.just(value.valid)] * 2 if value.valid is not None else []
            options[name] = st.one_of(*valid, hostile_text())
    return st.fixed_dictionaries(options)


# --- the checks -------------------------------------------------------------------------------


def _unescaped(body: str, sent: Mapping[str, str]) -> list[str]:
    """Hostile markup that came back as markup."""
    return [
        f"{name}: {piece!r} is in the page unescaped"
        for name, value in sent.items()
        for piece in MARKUP[:3]
        if piece in value and piece in body
    ]


def _shown(world: World, target: Target, sent: Mapping[str, str]) -> None:
    """What the form stored is on its pages exactly as stored, escaped."""
    assert target.stored is not None
    pages: dict[tuple[str, str], str] = {}
    for shown in target.stored(world):
        where = (shown.actor, shown.path)
        if where not in pages:
            page = _client(world, shown.actor).get(shown.path)
            assert page.status_code == 200, f"GET {shown.path} as {shown.actor}: {page.status_code}"
            pages[where] = page.get_data(as_text=True)
            assert not _unescaped(pages[where], sent), (shown.path, _unescaped(pages[where], sent))
        expected = str(escape(shown.value))
        assert expected in pages[where], f"{shown.path} does not show {expected[:100]!r} as stored"


def _followed(client: FlaskClient, answer: TestResponse) -> str:
    """The page a browser shows next: a redirect's target (with its flashed message)."""
    location = answer.headers.get("Location", "")
    if 300 <= answer.status_code < 400 and location.startswith("/"):
        return client.get(location).get_data(as_text=True)
    return ""


def _path(world: World, endpoint: str, target: Target, places: Mapping[str, str]) -> str:
    values = {
        name: world.ids.get(value, value) if isinstance(value, str) else value
        for name, value in {**target.args, **target.query}.items()
    }
    with world.app.test_request_context():
        return url_for(endpoint, **{**values, **places})


def _post(
    world: World, endpoint: str, target: Target, sent: dict[str, str], places: dict[str, str]
) -> None:
    before = snapshot(world.app)
    path = _path(world, endpoint, target, places)
    form = {**sent, "csrf_token": world.csrf[target.actor]}
    client = _client(world, target.actor)
    answer = client.post(path, data=form)
    status = answer.status_code
    assert status < 500, f"POST {path} answered {status}"
    if 400 <= status < 500:
        changes = _changes(before, snapshot(world.app))
        assert not changes, f"POST {path} was refused ({status}) but stored: {changes}"
    body = answer.get_data(as_text=True) + _followed(client, answer)
    assert not _unescaped(body, sent), _unescaped(body, sent)
    if target.stored is not None:
        _shown(world, target, sent)


# --- the tests --------------------------------------------------------------------------------


def _targets() -> Iterator[Any]:
    for endpoint, targets in sorted(FUZZ.items()):
        for number, target in enumerate(targets):
            yield pytest.param(endpoint, number, id=f"{endpoint}-{target.actor}")


@pytest.mark.parametrize(("endpoint", "number"), list(_targets()))
def test_hostile_values_are_refused_or_stored_and_shown_escaped(
    world: World, endpoint: str, number: int
) -> None:
    target = FUZZ[endpoint][number]
    fields = target.fields
    if callable(fields):
        with world.app.app_context():
            fields = fields()

    @settings(
        max_examples=target.examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sent=field_values(fields), places=place_values(target))
    def post(sent: dict[str, str], places: dict[str, str]) -> None:
        _post(world, endpoint, target, sent, places)

    valid = {name: values[0] for name, values in fields.items() if values}
    valid_places = {
        name: value.valid
        for name, value in {**target.args, **target.query}.items()
        if isinstance(value, Fuzzed) and value.valid is not None
    }
    for name in target.texts:
        post = example(sent={**valid, name: ALL_MARKUP}, places=valid_places)(post)
    post()


def test_every_post_route_is_fuzzed(tmp_path: Path) -> None:
    app = create_app(settings_for_tests("sqlite://", tmp_path / "data"))
    try:
        writes = {
            rule.endpoint
            for rule in app.url_map.iter_rules()
            if (rule.methods or set()) & WRITE_METHODS
        }
    finally:
        dispose_engines(app)
    assert writes - FUZZ.keys() - FUZZED_ELSEWHERE == set(), "POST routes without a FUZZ entry"
    assert FUZZ.keys() - writes == set(), "FUZZ entries for no POST route"
