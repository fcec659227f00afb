"""Every page, in English, German and Arabic, signed out, signed in and as the privacy team:
WCAG 2.2 AA as far as axe-core can tell (zero violations), nothing asked of another origin,
and at most 50 KB of HTML, CSS and JavaScript on the wire for a first visit (pages are
compressed for a browser's own navigations; README, "Page weight").

The pages are the GET routes of the app's URL map: each is either visited here (with real ids
and real link tokens of the demo data) or named in SKIPPED with the reason, so a new page
cannot go unchecked. Ids and tokens come from this module's own server and database (the
shared one keeps the demo data other tests count on).

Speed: one browser context per (role, language); its pages go through two tabs, and axe
checks the two side by side. The browser cache is switched off, so each page's weight is what
a first visit transfers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, url_for
from playwright.sync_api import BrowserContext, Page, Request
from sqlalchemy import select, update

from app.datamap import get_datamap
from app.extensions import db
from app.models import Export, GeneratedImage, Prompt, User
from app.services import deletion, records
from tests.e2e.axe import axe_report, preload_axe, start_axe
from tests.e2e.conftest import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    LiveServer,
    Visitor,
    serve_app,
    visitors_of,
)

pytestmark = pytest.mark.e2e

VISITOR, USER, STAFF = "visitor", "demo user", "staff"
ROLES = (VISITOR, USER, STAFF)
LOCALES = ("en", "de", "ar")
STAFF_EMAIL, STAFF_PASSWORD = "staff@example.com", "staff-password"
DEMO2_EMAIL = "demo2@example.com"
MAX_PAGE_BYTES = 50 * 1024
TABS = 2  # pages checked side by side (the machines have two cores)
# What a first visit downloads to show a page (images, such as thumbnails, are not counted).
WEIGHED_TYPES = frozenset({"document", "stylesheet", "script", "xhr", "fetch"})
DETAILS = "My billing country is wrong: it says Germany, it should say Austria."

# GET routes not visited, and why. Everything else in the URL map must be in PAGES.
SKIPPED: dict[str, str] = {
    # CSS, JavaScript and the icon: weighed as part of every page, not pages themselves.
    "static": "assets of every page",
    # Machine-readable answers, not pages: JSON for monitors and the platform's services.
    "main.healthz": "JSON for monitors",
    "api.openapi": "JSON: the API's OpenAPI document",
    "api.consent": "JSON for the platform",
    "api.processing": "JSON for the platform",
    "api.subscriptions": "JSON for the platform",
    "api.suppressions": "JSON for the platform",
    # Downloads: files saved by the browser, not shown.
    "consent.history_csv": "a CSV download",
    "consent.history_json": "a JSON download",
    "exports.download": "the ZIP archive (its expired page: test_e2e_exports.py)",
    "data.original": "an image file, shown inside the item page",
    "data.thumbnail": "an image, shown inside the data pages",
    # The same page as another entry: a redirect to /preferences/marketing in a link session.
    "marketing.open_link": "redirects to the page marketing.manage also leads to",
}


@dataclass(frozen=True)
class Ref:
    """A value that exists only once the module's data does (an id, a token)."""

    name: str


@dataclass(frozen=True)
class Visit:
    endpoint: str
    role: str
    values: Mapping[str, Any] = field(default_factory=dict)  # path values and the query
    status: int = 200


@dataclass(frozen=True)
class Opening:
    """A visit with its values filled in: what a tab opens."""

    path: str
    status: int = 200
    max_bytes: int = MAX_PAGE_BYTES


def _data_pages() -> list[Visit]:
    """Every category of the data map that has a records page, and its deletion pages."""
    visits = []
    for category in get_datamap().categories:
        try:
            records.records_category(category.key)
        except records.UnknownCategoryError:
            continue  # kept only in the browser (cookies): no records page
        visits.append(Visit("data.category", USER, {"category": category.key}))
        if deletion.can_bulk_delete(category):
            values = {"category": category.key, "before": "2025-01-01"}
            visits.append(Visit("data.delete_older", USER, values))
    return visits


def _request_kinds(role: str) -> list[Visit]:
    from app.services.requests import KINDS

    return [
        Visit("requests.make", role, {"kind": key})
        for key, kind in KINDS.items()
        if kind.by_email or role != VISITOR
    ]


PROMPT_ITEM = {"category": "prompts", "item_id": Ref("prompt")}
IMAGE_ITEM = {"category": "images", "item_id": Ref("image")}
PUBLIC_PAGES = (
    "main.index",
    "auth.login",
    "policy.index",
    "policy.versions",
    "consent.settings",
    "consent.confirm_sale",
    "consent.do_not_sell",
    "marketing.preferences",
    "requests.index",
    "requests.new",
    "dev.outbox",
)
PAGES: list[Visit] = [
    *(Visit(endpoint, role) for endpoint in PUBLIC_PAGES for role in (VISITOR, USER)),
    *(
        Visit(endpoint, role, values)
        for endpoint, values in (
            ("policy.version", {"version": Ref("policy version")}),
            ("dev.message", {"name": Ref("outbox message")}),
        )
        for role in (VISITOR, USER)
    ),
    Visit("region.index", VISITOR),  # signed in, the place is chosen on the profile page
    *_request_kinds(VISITOR),
    *_request_kinds(USER),
    # Emailed links, opened by someone not signed in.
    Visit("requests.confirm", VISITOR, {"token": Ref("verify token")}),
    Visit("requests.cancel_link", VISITOR, {"token": Ref("cancel token")}),
    Visit("requests.status", VISITOR, {"token": Ref("status token")}),
    Visit("profile.confirm_email", VISITOR, {"token": Ref("email change token")}),
    Visit("marketing.confirm", VISITOR, {"token": Ref("subscription token")}),
    Visit("marketing.unsubscribe", VISITOR, {"token": Ref("unsubscribe token")}),
    Visit("marketing.unsubscribed", VISITOR, {"token": Ref("unsubscribed token")}),
    # Last for the visitor: it starts a link session (the marketing page changes with it).
    Visit("marketing.manage", VISITOR, {"token": Ref("unsubscribe token")}),
    # Signed in.
    Visit("auth.reauth", USER),
    Visit("profile.index", USER),
    Visit("data.index", USER),
    *_data_pages(),
    Visit("data.item", USER, PROMPT_ITEM),
    Visit("data.item", USER, IMAGE_ITEM),
    Visit("data.delete_item", USER, PROMPT_ITEM),
    Visit("data.delete_item", USER, IMAGE_ITEM),
    Visit("exports.index", USER),
    Visit("exports.preview", USER, {"scope": "chosen", "category": "prompts"}),
    Visit("exports.status", USER, {"export_id": Ref("export")}),
    Visit("requests.detail", USER, {"request_id": Ref("request")}),
    # The privacy team.
    Visit("admin.queue", STAFF),
    Visit("admin.detail", STAFF, {"request_id": Ref("request")}),
    *(
        Visit("admin.action_page", STAFF, {"request_id": Ref("request"), "action": action})
        for action in ("step", "complete", "refuse", "extend")
    ),
]
NOT_FOUND_PATH = "/there-is-nothing-here"


# --- the module's server and data -------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serve_app(tmp_path_factory.mktemp("e2e-every-page")) as server:
        yield server


@pytest.fixture(scope="module")
def refs(site: LiveServer) -> dict[Ref, Any]:
    with site.app.app_context():
        made = _make_objects(site.app)
        db.session.remove()
    return made


def _first_id(model: Any, user_id: int) -> int:
    found = db.session.scalar(select(model.id).where(model.user_id == user_id).order_by(model.id))
    assert found is not None, f"the demo user has no {model.__name__}"
    return found


def _make_objects(app: Flask) -> dict[Ref, Any]:
    """The demo user's objects that id-bearing pages name, and a real token for each link."""
    from app.services import exports, marketing, profile
    from app.services import requests as request_service
    from app.services.mail import list_outbox
    from app.services.notice import get_notice
    from tests.support.requests import confirmation_token, seeded_user

    settings = app.config["SETTINGS"]
    demo, demo2 = seeded_user(DEMO_EMAIL), seeded_user(DEMO2_EMAIL)
    export = exports.request_export(demo.id, ["account"], None, None)
    db.session.commit()  # jobs run inline: the export is built by now
    assert db.session.get(Export, export.id).status == Export.READY  # type: ignore[union-attr]

    confirmed = request_service.create_for_user(demo, "correct", details=DETAILS)
    request_service.confirm(confirmation_token(settings.mail_outbox_dir, demo.email, confirmed.id))
    unconfirmed = request_service.create_for_user(demo, "question", details=DETAILS)
    verify_token = confirmation_token(settings.mail_outbox_dir, demo.email, unconfirmed.id)

    email_tokens: list[str] = []
    profile.request_email_change(
        demo2,
        new_email="pages-new-address@example.org",
        password=DEMO_PASSWORD,
        secret_key=settings.secret_key,
        confirm_url=lambda token: email_tokens.append(token) or token,
        profile_url=settings.base_url + "/profile",
    )

    reader, gone = "pages-reader@example.org", "pages-gone@example.org"
    for address in (reader, gone):
        marketing.seed_subscriber(address, ("newsletter", "offers"))
    db.session.commit()
    reader_id = marketing.find_subscriber(reader).id  # type: ignore[union-attr]
    unsubscribed = marketing.find_subscriber(gone)
    assert unsubscribed is not None
    marketing.unsubscribe(unsubscribed, "newsletter", source="link")
    subscription_tokens: list[str] = []
    marketing.request_subscription(
        unsubscribed,
        "research",
        source="page",
        confirm_url=lambda token: subscription_tokens.append(token) or token,
    )
    return {
        Ref("prompt"): _first_id(Prompt, demo.id),
        Ref("image"): _first_id(GeneratedImage, demo.id),
        Ref("export"): export.id,
        Ref("request"): confirmed.id,
        Ref("verify token"): verify_token,
        Ref("cancel token"): request_service.cancel_url(confirmed.id).rsplit("/", 1)[1],
        Ref("status token"): request_service.status_token(confirmed.id),
        Ref("email change token"): email_tokens[-1],
        Ref("subscription token"): subscription_tokens[-1],
        Ref("unsubscribe token"): marketing.unsubscribe_token(reader_id, "newsletter"),
        Ref("unsubscribed token"): marketing.unsubscribe_token(unsubscribed.id, "newsletter"),
        Ref("policy version"): get_notice().current.version,
        Ref("outbox message"): list_outbox()[0].name,
    }


def _path(app: Flask, visit: Visit, refs: Mapping[Ref, Any]) -> str:
    values = {name: refs[v] if isinstance(v, Ref) else v for name, v in visit.values.items()}
    with app.test_request_context():
        return url_for(visit.endpoint, **values)


def _set_locale(app: Flask, email: str, locale: str) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.email == email).values(locale=locale))
        db.session.commit()
        db.session.remove()


@pytest.fixture
def visit_site(
    new_context: Callable[..., BrowserContext], site: LiveServer
) -> Iterator[Callable[..., Visitor]]:
    with visitors_of(site, new_context) as visit:
        yield visit


# --- what each page is held to ----------------------------------------------------------------


@dataclass
class Tab:
    """One browser tab going through pages, and what each page asked of the network."""

    page: Page
    origin: str
    requests: list[Request] = field(default_factory=list)
    opening: Opening = Opening("")
    problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: BrowserContext, origin: str) -> Tab:
        tab = cls(context.new_page(), origin)
        # Every page loads its CSS and JavaScript again, as on a first visit.
        session = context.new_cdp_session(tab.page)
        session.send("Network.enable")
        session.send("Network.setCacheDisabled", {"cacheDisabled": True})
        tab.page.on("request", tab._record)
        return tab

    def _record(self, request: Request) -> None:
        self.requests.append(request)

    def go(self, opening: Opening, locale: str) -> None:
        self.opening, self.problems = opening, []
        self.requests.clear()
        response = self.page.goto(self.origin + opening.path)
        answered = response.status if response is not None else None
        if answered != opening.status:
            self.problems.append(f"answered {answered}, not {opening.status}")
        if self.page.locator("html").get_attribute("lang") != locale:
            self.problems.append(f"<html lang> is not {locale}")

    def check(self) -> list[str]:
        """What is wrong with the page `go` opened, once `start_axe` ran on it."""
        problems = self.problems
        report = axe_report(self.page)
        if report:
            problems.append(report)
        problems += [
            f"asked another origin: {r.url}"
            for r in self.requests
            if not r.url.startswith(self.origin + "/")
        ]
        sizes = self._weighed()
        if not {".css", ".js"} <= {Path(urlsplit(url).path).suffix for url in sizes}:
            problems.append(f"the stylesheet or the script was not loaded: {sorted(sizes)}")
        if sum(sizes.values()) > self.opening.max_bytes:
            problems.append(
                f"{sum(sizes.values())} bytes on the wire, over {self.opening.max_bytes}: {sizes}"
            )
        return problems

    def _weighed(self) -> dict[str, int]:
        """Bytes per weighed response: its headers and its body as sent (compressed or not)."""
        sizes: dict[str, int] = {}
        for request in self.requests:
            if request.resource_type in WEIGHED_TYPES:
                size = request.sizes()
                sizes[request.url] = size["responseHeadersSize"] + size["responseBodySize"]
        return sizes


def _sign_in_as(visitor: Visitor, role: str) -> None:
    if role == USER:
        visitor.sign_in(DEMO_EMAIL, DEMO_PASSWORD)
    elif role == STAFF:
        visitor.sign_in(STAFF_EMAIL, STAFF_PASSWORD)
    visitor.watch.assert_clean()


def _check_pages(
    visitor: Visitor, origin: str, openings: list[Opening], locale: str
) -> dict[str, list[str]]:
    """Problems per path. Pages are opened TABS at a time, and axe checks them side by side
    (it takes most of the time, in each tab's own renderer)."""
    preload_axe(visitor.context)
    tabs = [Tab.open(visitor.context, origin) for _ in range(TABS)]
    failures: dict[str, list[str]] = {}
    for first in range(0, len(openings), TABS):
        batch = list(zip(tabs, openings[first : first + TABS], strict=False))
        for tab, opening in batch:
            if opening.status != 200:
                visitor.watch.expect_status(opening.path, opening.status)
            tab.go(opening, locale)
        for tab, _opening in batch:
            start_axe(tab.page)
        for tab, opening in batch:
            if problems := tab.check():
                failures[opening.path] = problems
        if noticed := visitor.watch.take_problems():
            paths = " or ".join(opening.path for _tab, opening in batch)
            failures.setdefault(paths, []).extend(noticed)
    return failures


# --- the tests --------------------------------------------------------------------------------


def test_every_get_route_is_visited_or_skipped_with_a_reason(site: LiveServer) -> None:
    routed = {
        rule.endpoint for rule in site.app.url_map.iter_rules() if "GET" in (rule.methods or ())
    }
    visited = {visit.endpoint for visit in PAGES}
    unchecked = sorted(routed - visited - SKIPPED.keys())
    assert not unchecked, f"GET routes neither in PAGES nor in SKIPPED: {unchecked}"
    unknown = sorted((visited | SKIPPED.keys()) - routed)
    assert not unknown, f"entries for routes that do not exist: {unknown}"
    assert not visited & SKIPPED.keys(), f"both visited and skipped: {visited & SKIPPED.keys()}"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("role", ROLES)
def test_every_page_passes_axe_asks_no_other_origin_and_stays_light(
    visit_site: Callable[..., Visitor],
    site: LiveServer,
    refs: dict[Ref, Any],
    role: str,
    locale: str,
) -> None:
    email = {USER: DEMO_EMAIL, STAFF: STAFF_EMAIL}.get(role)
    if email is not None:
        _set_locale(site.app, email, locale)  # an account's language beats the cookie
    visitor = visit_site()
    _sign_in_as(visitor, role)
    visitor.context.add_cookies([{"name": "pc_lang", "value": locale, "url": site.url}])
    openings = [
        Opening(_path(site.app, visit, refs), visit.status) for visit in PAGES if visit.role == role
    ]
    if role == VISITOR:
        openings.append(Opening(NOT_FOUND_PATH, 404))
    try:
        failures = _check_pages(visitor, site.url, openings, locale)
    finally:
        if email is not None:
            _set_locale(site.app, email, "en")
    assert not failures, f"{len(failures)} of {len(openings)} pages failed:\n" + "\n\n".join(
        f"{path}:\n" + "\n".join(problems) for path, problems in failures.items()
    )
