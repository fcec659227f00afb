"""The access-control matrix: every route in the URL map, for every actor and every method.

`ACCESS` says, per endpoint, who may use it. The tests ask the app as four actors (a visitor,
the demo user A, the second demo user B and a member of the privacy team), with each method the
route allows (GET, POST, PUT; a POST carries the CSRF token of the actor's own session, so the
check reaches the view), and hold every answer to the endpoint's rule:

- `public`: everyone gets 2xx/3xx.
- `signed_in`: a visitor is sent to sign in (or gets 401); signed-in people are let in (2xx, or
  3xx anywhere but the sign-in page: the fresh-password page counts as let in). With `owned`,
  the path names an object of A: A gets it, everyone else signed in gets 404 (never 403, which
  would confirm that it exists), and an unknown id is 404 for everyone signed in.
- `staff`: a visitor is sent to sign in, people outside the team get 403, the team gets in
  (and 404 for an unknown id).
- `api`: /api/v1 with a platform key: without a key, or with a wrong one, 401 for everyone,
  signed in or not; with a key from PLATFORM_API_KEYS, allowed (404 for an unknown id).
- `token`: an emailed link. A made-up token, or a real one with its payload changed (another
  id, same signature), is 400/404/410 for everyone: never 2xx, never 5xx.
- `demo_only`: /dev pages: 404 when demo mode is off, open to everyone in demo mode.

Nothing may answer 5xx, for anyone. Every rule of the URL map needs an entry, so a new route
fails `test_every_route_has_an_entry` until someone decides who may use it.

The demo seed runs once per module and database backend (per xdist worker; it takes
seconds), and each endpoint's row of the matrix is its own test on that shared data. Each
check runs in a fresh client that carries a copy of the actor's session cookie, so a sign-out
or a link session stays in that check. POSTs that would destroy what other checks read (A
deleting an item, cancelling a request, the team closing a request) are sent by the allowed
actor to objects made for them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.exc import BadData
from sqlalchemy import select
from sqlalchemy.engine import Engine
from werkzeug.routing import Rule as UrlRule
from werkzeug.test import TestResponse

from app import create_app
from app.extensions import db
from app.models import Export, GeneratedImage, Prompt
from app.services import exports as export_service
from app.services import marketing
from app.services import requests as request_service
from app.services.choices import MODEL_IMPROVEMENT
from app.services.demo import seed_demo
from app.services.mail import list_outbox
from app.services.notice import get_notice
from app.services.profile import make_token
from tests.conftest import settings_for_tests
from tests.support.databases import delete_all_rows, dispose_engines
from tests.support.requests import confirmation_token, seeded_user
from tests.support.web import SESSION_COOKIE, session_and_token

KEYS = ("matrix-platform-key-0123456789",)
pytestmark = pytest.mark.app_settings(platform_api_keys=KEYS)

ANONYMOUS, A, B, STAFF = "anonymous", "A", "B", "staff"
# The owner last: what A is allowed to POST may change what A sees.
ACTORS = (ANONYMOUS, B, STAFF, A)
# What each person is, as the demo seed makes them: forms that take these values (signing
# in, the profile, the language menu) change nothing for the other checks. A visitor signs in
# as A.
PEOPLE = {
    A: {"email": "demo@example.com", "password": "demo-password", "country": "DE", "locale": "en"},
    B: {"email": "demo2@example.com", "password": "demo-password", "country": "US", "locale": "de"},
    STAFF: {
        "email": "staff@example.com",
        "password": "staff-password",
        "country": "DE",
        "locale": "en",
    },
}
PEOPLE[ANONYMOUS] = PEOPLE[A]
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
UNKNOWN_ID = 999_999
OUT_OF_RANGE_IDS = (2**31, 2**63)  # past int4 (PostgreSQL ids), past int8 (SQLite's too)
MADE_UP_TOKEN = "not-a-real-link-token"
BAD_LINK = frozenset({400, 404, 410})
DETAILS = "My billing country is wrong: it says Germany, it should say Austria."
INT_ARGUMENT = re.compile(r"<int:(\w+)>")
TOKEN_ARGUMENT = re.compile(r"<(?:\w+:)?token>")


# --- the table --------------------------------------------------------------------------------


class Rule(StrEnum):
    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    STAFF = "staff"
    API = "api"
    TOKEN = "token"
    DEMO_ONLY = "demo_only"


@dataclass(frozen=True)
class Ref:
    """A value that exists only once the module's data does (an id, a token)."""

    name: str


@dataclass(frozen=True)
class Own:
    """A value of the actor's own (see PEOPLE)."""

    name: str


EMAIL, PASSWORD, COUNTRY, LOCALE = Own("email"), Own("password"), Own("country"), Own("locale")
PROFILE = {
    "name": "Matrix Example",
    "country": COUNTRY,
    "locale": LOCALE,
    "billing_name": "Matrix Example",
    "billing_line1": "Hauptstraße 1",
    "billing_city": "Berlin",
    "billing_postal_code": "10115",
    "billing_country": "DE",
}


@dataclass(frozen=True)
class Policy:
    rule: Rule
    args: Mapping[str, Any] = field(default_factory=dict)  # the path's values
    query: Mapping[str, Any] = field(default_factory=dict)  # a Ref here is an id too
    form: Mapping[str, Any] = field(default_factory=dict)  # POST (with the CSRF token)
    json: Any = None  # PUT
    # The path names A's object: A may use it, others get 404 (signed_in only).
    owned: bool = False
    # Path values for the allowed actor's POST: objects made to be deleted or closed.
    post_args: Mapping[str, Any] | None = None
    # Answers of the view itself (not of access control) that still mean "let in".
    also: frozenset[int] = frozenset()
    # Further checks of the same endpoint (other path values, other forms).
    more: tuple[Policy, ...] = ()
    # Only these methods (default: every method the route allows).
    methods: frozenset[str] | None = None


def public(**kwargs: Any) -> Policy:
    return Policy(Rule.PUBLIC, **kwargs)


def signed_in(**kwargs: Any) -> Policy:
    return Policy(Rule.SIGNED_IN, **kwargs)


def owned(**kwargs: Any) -> Policy:
    return Policy(Rule.SIGNED_IN, owned=True, **kwargs)


def staff(**kwargs: Any) -> Policy:
    return Policy(Rule.STAFF, **kwargs)


def api(**kwargs: Any) -> Policy:
    return Policy(Rule.API, **kwargs)


def token(ref: Ref, **kwargs: Any) -> Policy:
    return Policy(Rule.TOKEN, args={"token": ref}, **kwargs)


def demo_only(**kwargs: Any) -> Policy:
    return Policy(Rule.DEMO_ONLY, **kwargs)


PROMPT, IMAGE = Ref("prompt"), Ref("image")
SPARE_PROMPT, SPARE_IMAGE = Ref("spare prompt"), Ref("spare image")
EXPORT = Ref("export")
REQUEST, SPARE_REQUEST = Ref("request"), Ref("spare request")
USER_A = Ref("user A")
TOPIC = "newsletter"
PROMPTS = {"category": "prompts", "item_id": PROMPT}
IMAGES = {"category": "images", "item_id": IMAGE}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _open_request(action: str) -> dict[str, Ref]:
    return {"request_id": Ref(f"open request for {action}")}


def _admin_action(action: str, **form: Any) -> Policy:
    return staff(args={"request_id": REQUEST}, post_args=_open_request(action), form=form)


ACCESS: dict[str, Policy] = {
    # --- pages for everyone
    "main.index": public(),
    "main.healthz": public(),
    "auth.login": public(form={"email": EMAIL, "password": PASSWORD}),
    "auth.logout": public(),
    "i18n.set_language": public(form={"language": LOCALE, "next": "/"}),
    "policy.index": public(),
    "region.index": public(),
    "region.choose": public(form={"country": "DE", "region": ""}),
    "policy.versions": public(),
    "policy.version": public(args={"version": Ref("policy version")}),
    "consent.settings": public(),
    "consent.decide": public(form={"decision": "reject_all", "origin": "settings"}),
    "consent.confirm_sale": public(),
    "consent.do_not_sell": public(),
    "consent.history_csv": public(),
    "consent.history_json": public(),
    "marketing.preferences": public(),
    "marketing.switch_topic": public(args={"topic": TOPIC}, form={"subscribe": "0"}),
    "marketing.unsubscribe_all": public(),
    "marketing.leave": public(),
    "marketing.request_link": public(form={"email": "reader@example.com"}),
    "requests.index": public(),
    "requests.new": public(),
    # A kind that can be asked for by email is open to everyone; the others need an account.
    # An appeal names the appealed request (`?of=`): only one's own (A's is not refused: 409).
    "requests.make": public(
        args={"kind": "question"},
        form={"email": "reader@example.com", "details": DETAILS},
        more=(
            signed_in(args={"kind": "appeal"}),
            owned(args={"kind": "appeal"}, query={"of": REQUEST}, also=frozenset({409})),
        ),
    ),
    "api.openapi": public(),
    # --- signed in
    "auth.reauth": signed_in(form={"password": PASSWORD}),
    "policy.dismiss_notice": signed_in(),
    "profile.index": signed_in(),
    "profile.save": signed_in(form=PROFILE),
    "profile.request_email_change": signed_in(
        form={"new_email": "changed-address@example.com", "password": PASSWORD}
    ),
    "profile.cancel_email_change": signed_in(),
    "data.index": signed_in(),
    "data.category": signed_in(args={"category": "prompts"}),
    "data.model_improvement": signed_in(form={"allowed": "1"}),
    # Everything before 2000: nothing, so every actor may confirm it.
    "data.delete_older": signed_in(
        args={"category": "prompts"},
        query={"before": "2000-01-01"},
        form={"expected_prompts": "0", "expected_images": "0"},
    ),
    "exports.index": signed_in(),
    "exports.preview": signed_in(),
    "exports.create": signed_in(form={"scope": "chosen", "category": "account"}),
    # --- signed in, and only the owner's objects
    "data.item": owned(args=PROMPTS, more=(owned(args=IMAGES),)),
    "data.delete_item": owned(
        args=PROMPTS,
        post_args={**PROMPTS, "item_id": SPARE_PROMPT},
        more=(owned(args=IMAGES, post_args={**IMAGES, "item_id": SPARE_IMAGE}),),
    ),
    "data.thumbnail": owned(args=IMAGES),
    "data.original": owned(args=IMAGES),
    "exports.status": owned(args={"export_id": EXPORT}),
    "exports.download": owned(args={"export_id": EXPORT}),
    "requests.detail": owned(args={"request_id": REQUEST}),
    "requests.resend": owned(args={"request_id": REQUEST}),
    "requests.cancel": owned(args={"request_id": REQUEST}, post_args={"request_id": SPARE_REQUEST}),
    # --- the privacy team
    "admin.queue": staff(),
    "admin.detail": staff(args={"request_id": REQUEST}),
    "admin.action_page": staff(args={"request_id": REQUEST, "action": "complete"}),
    "admin.step": _admin_action("step", step=request_service.manual_steps("correct")[0]),
    "admin.complete": _admin_action("complete"),
    "admin.refuse": _admin_action("refuse", reason=request_service.REFUSAL_REASONS[0]),
    "admin.extend": _admin_action("extend", reason=request_service.EXTENSION_REASONS[0]),
    # --- the platform API
    "api.processing": api(args={"user_id": USER_A}),
    "api.set_processing": api(
        args={"user_id": USER_A, "purpose": MODEL_IMPROVEMENT}, json={"allowed": True}
    ),
    "api.consent": api(args={"subject": USER_A}),
    "api.subscriptions": api(args={"email": "demo@example.com"}),
    "api.suppressions": api(),
    # --- emailed links
    "requests.confirm": token(Ref("verify token")),
    "requests.cancel_link": token(Ref("cancel token")),
    "requests.status": token(Ref("status token")),
    "requests.status_cancel": token(Ref("status token")),
    "profile.confirm_email": token(Ref("email change token")),
    "marketing.confirm": token(Ref("subscription token")),
    "marketing.open_link": token(Ref("manage token")),
    "marketing.unsubscribe": token(
        Ref("unsubscribe token"),
        more=(token(Ref("unsubscribe token"), form=ONE_CLICK, methods=frozenset({"POST"})),),
    ),
    "marketing.unsubscribed": token(Ref("unsubscribe token")),
    "marketing.manage": token(Ref("unsubscribe token")),
    "marketing.undo": token(Ref("unsubscribe token")),
    # --- demo mode only
    "dev.outbox": demo_only(),
    "dev.message": demo_only(args={"name": Ref("outbox message")}),
}


# --- the module's data ------------------------------------------------------------------------


@dataclass
class World:
    app: Flask
    demo_off: Flask  # the same database, with demo mode off
    refs: dict[Ref, Any]
    cookies: dict[str, str | None]  # actor -> session cookie
    csrf: dict[str, str]  # actor -> a CSRF token of that session


def _make_objects(app: Flask) -> dict[Ref, Any]:
    """A's objects that the id-bearing routes name, and a real token for each kind of link."""
    settings = app.config["SETTINGS"]
    seed_demo(echo=lambda *_: None)
    a, b = seeded_user(PEOPLE[A]["email"]), seeded_user(PEOPLE[B]["email"])
    prompt = db.session.scalar(select(Prompt.id).where(Prompt.user_id == a.id).order_by(Prompt.id))
    images = db.session.scalars(
        select(GeneratedImage.id).where(GeneratedImage.user_id == a.id).order_by(GeneratedImage.id)
    ).all()
    assert prompt is not None and len(images) >= 2, "the demo user needs prompts and images"
    spare_prompt = Prompt(user_id=a.id, text="a prompt made to be deleted", language="en")
    db.session.add(spare_prompt)
    export = export_service.request_export(a.id, ["account"], None, None)
    db.session.commit()  # jobs run inline in tests: the export is built by now
    built = db.session.get(Export, export.id)
    assert built is not None and built.status == Export.READY, "the export was not built"
    request = request_service.create_for_user(a, "correct", details=DETAILS)
    spare_request = request_service.create_for_user(a, "question", details=DETAILS)
    refs: dict[Ref, Any] = {
        USER_A: a.id,
        PROMPT: prompt,
        IMAGE: images[0],
        SPARE_PROMPT: spare_prompt.id,
        SPARE_IMAGE: images[-1],
        EXPORT: export.id,
        REQUEST: request.id,
        SPARE_REQUEST: spare_request.id,
    }
    for action in ("step", "complete", "refuse", "extend"):
        opened = request_service.create_for_user(a, "correct", details=DETAILS).id
        request_service.confirm(confirmation_token(settings.mail_outbox_dir, a.email, opened))
        refs[Ref(f"open request for {action}")] = opened
    own_subscriber = marketing.subscriber_for_user(a.id)
    other_subscriber = marketing.subscriber_for_user(b.id)
    assert own_subscriber is not None and other_subscriber is not None
    subscription_tokens: list[str] = []
    marketing.request_subscription(
        other_subscriber,
        TOPIC,
        source="page",
        confirm_url=lambda found: subscription_tokens.append(found) or found,
    )
    cancel_url = request_service.cancel_url(request.id)
    verify_url = request_service.verify_url(request.id, "a-nonce")
    refs |= {
        Ref("policy version"): get_notice().current.version,
        Ref("verify token"): verify_url.rsplit("/", 1)[1],
        Ref("cancel token"): cancel_url.rsplit("/", 1)[1],
        Ref("status token"): request_service.status_token(request.id),
        Ref("email change token"): make_token(settings.secret_key, 1, "a-nonce"),
        Ref("subscription token"): subscription_tokens[-1],
        Ref("manage token"): marketing.manage_link_token(own_subscriber.id),
        Ref("unsubscribe token"): marketing.unsubscribe_token(own_subscriber.id, "*"),
        Ref("outbox message"): list_outbox()[0].name,
    }
    return refs


def _sign_in(app: Flask) -> tuple[dict[str, str | None], dict[str, str]]:
    cookies: dict[str, str | None] = {}
    tokens: dict[str, str] = {}
    for actor in ACTORS:
        client = app.test_client()
        if actor == ANONYMOUS:
            cookies[actor], tokens[actor] = session_and_token(client)
        else:
            person = PEOPLE[actor]
            cookies[actor], tokens[actor] = session_and_token(
                client, person["email"], person["password"]
            )
    return cookies, tokens


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    _cleanup_engine: Engine,
    german_catalog: Any,
) -> Iterator[World]:
    """The demo seed and A's objects, once per module and backend (like `app`, with the
    module's `app_settings`); rows are deleted after the module."""
    del german_catalog  # compiled catalogs, as for every app the tests make
    overrides: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("app_settings"))):
        overrides.update(marker.kwargs)
    data_dir = tmp_path_factory.mktemp("access-matrix") / "data"
    apps = []
    try:
        for demo_mode in (True, False):
            settings = {**overrides, "demo_mode": demo_mode}
            made = create_app(settings_for_tests(database_url, data_dir, **settings))
            made.config["TESTING"] = True
            apps.append(made)
        app, demo_off = apps
        with app.app_context():
            refs = _make_objects(app)
        cookies, tokens = _sign_in(app)
        yield World(app, demo_off, refs, cookies, tokens)
    finally:
        for made in apps:
            dispose_engines(made)
        delete_all_rows(_cleanup_engine)


# --- asking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    says: str
    holds: Callable[[TestResponse], bool]


def _location(response: TestResponse) -> str:
    return response.headers.get("Location", "")


def _to_sign_in(response: TestResponse) -> bool:
    if response.status_code == 401:
        return True
    return response.status_code in (302, 303) and "/login" in _location(response)


def _let_in(policy: Policy) -> Expect:
    def holds(response: TestResponse) -> bool:
        status = response.status_code
        if status in policy.also or 200 <= status < 300:
            return True
        return 300 <= status < 400 and "/login" not in _location(response)

    extra = "".join(f"/{status}" for status in sorted(policy.also))
    return Expect(f"let in (2xx/3xx{extra}, not to /login)", holds)


def _status(*statuses: int) -> Expect:
    return Expect("/".join(map(str, statuses)), lambda response: response.status_code in statuses)


SIGN_IN = Expect("sent to sign in (302/303 to /login, or 401)", _to_sign_in)
FORBIDDEN, NOT_FOUND, UNAUTHORIZED = _status(403), _status(404), _status(401)
NO_SUCH_ROUTE = _status(404, 405)
LINK_REFUSED = _status(*sorted(BAD_LINK))


@dataclass(frozen=True)
class Check:
    actor: str
    method: str
    values: Mapping[str, Any]  # the path's values and the query
    expect: Expect
    note: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    demo_off: bool = False


def _methods(rule: UrlRule) -> list[str]:
    return sorted((rule.methods or set()) - IGNORED_METHODS)


def _int_arguments(rule: UrlRule) -> list[str]:
    return INT_ARGUMENT.findall(rule.rule)


def _unknown(policy: Policy, rule: UrlRule, unknown: int = UNKNOWN_ID) -> dict[str, Any] | None:
    """The values with every id (an int in the path, a Ref in the query) made unknown."""
    ids = [*_int_arguments(rule), *(k for k, v in policy.query.items() if isinstance(v, Ref))]
    return {**policy.args, **policy.query, **dict.fromkeys(ids, unknown)} if ids else None


def _tampered(real: str) -> str:
    """The real token with its payload changed (the next id), the signature kept."""
    payload, dot, rest = real.partition(".")
    try:
        value = json.loads(base64_decode(payload))
    except (BadData, ValueError):
        value = None
    if isinstance(value, list) and value and type(value[0]) is int:
        value[0] += 1
    elif isinstance(value, dict) and type(value.get("c")) is int:
        value["c"] += 1
    else:  # no id to change: change the first character instead
        changed = "A" if payload[:1] != "A" else "B"
        return changed + payload[1:] + dot + rest
    encoded = base64_encode(json.dumps(value, separators=(",", ":"))).decode()
    assert encoded != payload
    return encoded + dot + rest


KEY = {"Authorization": f"Bearer {KEYS[0]}"}
WRONG_KEY = {"Authorization": "Bearer not-a-platform-key"}


@dataclass(frozen=True)
class Case:
    """One policy of one rule, for one method: what its checks need."""

    policy: Policy
    values: Mapping[str, Any]
    own: Mapping[str, Any]  # the allowed actor's values (its POST: objects made for it)
    unknown: Mapping[str, Any] | None  # every id unknown; None: the path names no id
    let_in: Expect
    world: World


Ask = Callable[..., Check]


def _public(case: Case, actor: str, ask: Ask) -> Iterator[Check]:
    yield ask(case.values, case.let_in)


def _signed_in(case: Case, actor: str, ask: Ask) -> Iterator[Check]:
    if actor == ANONYMOUS:
        yield ask(case.values, SIGN_IN)
    elif not case.policy.owned:
        yield ask(case.values, case.let_in)
    else:
        if actor == A:
            yield ask(case.own, case.let_in, "A's own")
        else:
            yield ask(case.values, NOT_FOUND, "A's id")
        if case.unknown:
            yield ask(case.unknown, NOT_FOUND, "unknown id")


def _staff(case: Case, actor: str, ask: Ask) -> Iterator[Check]:
    if actor == ANONYMOUS:
        yield ask(case.values, SIGN_IN)
        return
    yield ask(case.own, case.let_in) if actor == STAFF else ask(case.values, FORBIDDEN)
    if case.unknown:
        yield ask(case.unknown, NOT_FOUND if actor == STAFF else FORBIDDEN, "unknown id")


def _api(case: Case, actor: str, ask: Ask) -> Iterator[Check]:
    yield ask(case.values, UNAUTHORIZED, "no key")
    yield ask(case.values, UNAUTHORIZED, "wrong key", WRONG_KEY)
    yield ask(case.values, case.let_in, "with a key", KEY)
    if case.unknown:
        yield ask(case.unknown, UNAUTHORIZED, "unknown id, no key")
        yield ask(case.unknown, NOT_FOUND, "unknown id, with a key", KEY)


def _token(case: Case, actor: str, ask: Ask) -> Iterator[Check]:
    real = case.world.refs[case.policy.args["token"]]
    yield ask({**case.values, "token": MADE_UP_TOKEN}, LINK_REFUSED, "made-up token")
    yield ask({**case.values, "token": _tampered(real)}, LINK_REFUSED, "tampered token")


def _demo_only(case: Case, actor: str, ask: Ask) -> Iterator[Check]:
    yield ask(case.values, case.let_in, "demo mode")
    yield ask(case.values, NOT_FOUND, "demo mode off", demo_off=True)


RULE_CHECKS: dict[Rule, Callable[[Case, str, Ask], Iterator[Check]]] = {
    Rule.PUBLIC: _public,
    Rule.SIGNED_IN: _signed_in,
    Rule.STAFF: _staff,
    Rule.API: _api,
    Rule.TOKEN: _token,
    Rule.DEMO_ONLY: _demo_only,
}


def _checks(policy: Policy, rule: UrlRule, world: World) -> Iterator[Check]:
    values = {**policy.args, **policy.query}
    for method in _methods(rule):
        if policy.methods is not None and method not in policy.methods:
            continue
        own = {**values, **(policy.post_args or {})} if method != "GET" else values
        case = Case(policy, values, own, _unknown(policy, rule), _let_in(policy), world)
        for actor in ACTORS:
            yield from RULE_CHECKS[policy.rule](case, actor, partial(Check, actor, method))


def _resolve(value: Any, world: World, actor: str) -> Any:
    if isinstance(value, Own):
        return PEOPLE[actor][value.name]
    return world.refs[value] if isinstance(value, Ref) else value


def _client(world: World, app: Flask, actor: str) -> FlaskClient:
    """A new browser with a copy of the actor's session."""
    client = app.test_client()
    cookie = world.cookies[actor]
    if cookie is not None:
        client.set_cookie(SESSION_COOKIE, cookie)
    return client


def _ask(world: World, policy: Policy, endpoint: str, check: Check) -> tuple[str, TestResponse]:
    app = world.demo_off if check.demo_off else world.app
    values = {name: _resolve(v, world, check.actor) for name, v in check.values.items()}
    with app.test_request_context():
        path = url_for(endpoint, **values)
    client = _client(world, app, check.actor)
    headers = dict(check.headers)
    if check.method == "GET":
        return path, client.get(path, headers=headers)
    if check.method == "PUT":
        return path, client.put(path, json=policy.json, headers=headers)
    form = {name: _resolve(v, world, check.actor) for name, v in policy.form.items()}
    form["csrf_token"] = world.csrf[check.actor]
    return path, client.open(path, method=check.method, data=form, headers=headers)


def _rules(world: World, endpoint: str) -> list[UrlRule]:
    return [r for r in world.app.url_map.iter_rules() if r.endpoint == endpoint]


def _failures(world: World, endpoint: str, policy: Policy, checks: Iterable[Check]) -> list[str]:
    problems = []
    for check in checks:
        path, response = _ask(world, policy, endpoint, check)
        response.close()  # a file sent (an image, an export) is open until then
        status = response.status_code
        if status >= 500 or not check.expect.holds(response):
            where = f" -> {_location(response)}" if 300 <= status < 400 else ""
            note = f" ({check.note})" if check.note else ""
            problems.append(
                f"{check.actor:9} {check.method:4} {path}{note}: {status}{where}, "
                f"expected {check.expect.says}"
            )
    return problems


def _problems(world: World, endpoint: str, policy: Policy) -> list[str]:
    rules = _rules(world, endpoint)
    if not rules:
        return [f"{endpoint}: no such endpoint in the URL map"]
    problems = []
    for rule in rules:
        problems += _failures(world, endpoint, policy, _checks(policy, rule, world))
    for extra in policy.more:
        problems += _problems(world, endpoint, extra)
    return problems


def _out_of_range_checks(policy: Policy, rule: UrlRule) -> Iterator[Check]:
    """The id-bearing policy's ids past what an id column holds (32 and 64 bits), asked by
    the actor who would get the object: an id that cannot exist is no route, so 404 (or 405
    where a route of another method has the same shape: Werkzeug matches the path first)."""
    if not (policy.owned or policy.rule in (Rule.STAFF, Rule.API)):
        return
    actor = STAFF if policy.rule is Rule.STAFF else A
    headers = KEY if policy.rule is Rule.API else {}
    for method in _methods(rule):
        if policy.methods is not None and method not in policy.methods:
            continue
        for unknown in OUT_OF_RANGE_IDS:
            values = _unknown(policy, rule, unknown)
            if values is not None:
                yield Check(actor, method, values, NO_SUCH_ROUTE, "id out of range", headers)


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(ACCESS))
def test_access_matrix(world: World, endpoint: str) -> None:
    problems = _problems(world, endpoint, ACCESS[endpoint])
    assert not problems, f"{endpoint} ({ACCESS[endpoint].rule}):\n" + "\n".join(problems)


def test_ids_past_the_column_range_are_unknown_ids_too(world: World) -> None:
    problems = []
    for endpoint, entry in sorted(ACCESS.items()):
        for policy in (entry, *entry.more):
            for rule in _rules(world, endpoint):
                checks = _out_of_range_checks(policy, rule)
                problems += [f"{endpoint}: {p}" for p in _failures(world, endpoint, policy, checks)]
    assert not problems, "ids out of range:\n" + "\n".join(problems)


def _rule_problems(app: Flask) -> list[str]:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    routed = {r.endpoint for r in rules}
    problems = [
        f"{name}: a route without an entry in ACCESS" for name in sorted(routed - ACCESS.keys())
    ]
    problems += [
        f"{name}: an entry in ACCESS for no route" for name in sorted(ACCESS.keys() - routed)
    ]
    for rule in sorted(rules, key=lambda r: r.endpoint):
        name, policy = rule.endpoint, ACCESS.get(rule.endpoint)
        if policy is None:
            continue
        if _int_arguments(rule) and not (policy.owned or policy.rule in (Rule.STAFF, Rule.API)):
            problems.append(f"{name}: names an id, so it needs an owned, staff or api policy")
        if TOKEN_ARGUMENT.search(rule.rule) and policy.rule is not Rule.TOKEN:
            problems.append(f"{name}: takes a link token, so its policy is token")
        if rule.rule.startswith("/api/") and policy.rule not in (Rule.API, Rule.PUBLIC):
            problems.append(f"{name}: under /api, so its policy is api (or public)")
        if rule.rule.startswith("/admin/") and policy.rule is not Rule.STAFF:
            problems.append(f"{name}: under /admin, so its policy is staff")
        if rule.rule.startswith("/dev/") and policy.rule is not Rule.DEMO_ONLY:
            problems.append(f"{name}: under /dev, so its policy is demo_only")
    return problems


def test_every_route_has_an_entry(tmp_path: Path) -> None:
    # The URL map needs no database: an app that never connects is enough.
    app = create_app(settings_for_tests("sqlite://", tmp_path / "data"))
    try:
        problems = _rule_problems(app)
    finally:
        dispose_engines(app)
    assert not problems, "ACCESS does not match the URL map:\n" + "\n".join(problems)


def test_a_new_route_without_an_entry_is_named(tmp_path: Path) -> None:
    app = create_app(settings_for_tests("sqlite://", tmp_path / "data"))
    app.add_url_rule("/matrix-probe/<int:thing_id>", "matrix_probe", lambda thing_id: "")
    try:
        problems = _rule_problems(app)
    finally:
        dispose_engines(app)
    assert problems == ["matrix_probe: a route without an entry in ACCESS"]
