"""The privacy notice, rendered from the data map, and its versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import (
    Blueprint,
    abort,
    current_app,
    has_request_context,
    redirect,
    render_template,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField

from app.datamap import DATAMAP_PATH, DataMap, get_datamap
from app.extensions import db
from app.jurisdictions import UNKNOWN, Jurisdiction
from app.services.notice import (
    VERSION_PATTERN,
    NoticeVersionInfo,
    datamap_fingerprint,
    dismiss_notice,
    get_notice,
    notice_facts,
    parse_snapshot,
    record_versions,
    stored_version,
    unseen_versions,
)
from app.web.htmx import wants_fragment
from app.web.i18n import country_name
from app.web.place import jurisdiction_name, period_words, reader_jurisdiction
from app.web.safety import safe_next_url

bp = Blueprint("policy", __name__, url_prefix="/policy")

RECORDED_FLAG = "notice_versions_recorded"


class DismissNoticeForm(FlaskForm):
    next = HiddenField()


# --- rights and where to exercise them --------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """Where a right is exercised: the first of `endpoints` this app has (real area, then the
    stand-in page while the area is not built)."""

    endpoints: tuple[str, ...]
    label: object


@dataclass(frozen=True)
class Right:
    key: str
    title: object
    text: object
    links: tuple[Link, ...] = ()


_DATA = ("data.index",)
_EXPORTS = ("exports.index",)
_REQUESTS = ("requests.index",)
_COOKIES = ("consent.settings",)
_MARKETING = ("marketing.preferences",)
_PROFILE = ("profile.index",)

RIGHTS = (
    Right(
        "access",
        _l("See your data"),
        _l(
            "You may ask whether we hold personal data about you, see it, and learn why we use "
            "it, where it comes from, who receives it and how long we keep it."
        ),
        (Link(_DATA, _l("Browse your data")), Link(_EXPORTS, _l("Download a copy"))),
    ),
    Right(
        "rectification",
        _l("Correct your data"),
        _l("If something we hold about you is wrong or incomplete, you may have it corrected."),
        (
            Link(_PROFILE, _l("Correct your profile")),
            Link(_REQUESTS, _l("Ask us to correct something else")),
        ),
    ),
    Right(
        "erasure",
        _l("Delete your data"),
        _l(
            "You may have your data deleted, unless a law obliges us to keep it for a time. "
            "You can delete your whole account, or some items one by one."
        ),
        (
            Link(_DATA, _l("Delete items on your data pages")),
            Link(_REQUESTS, _l("Ask for your account to be deleted")),
        ),
    ),
    Right(
        "restriction",
        _l("Restrict the use of your data"),
        _l(
            "You may ask us to keep your data but stop using it, for example while we check "
            "a correction you asked for or an objection you made."
        ),
        (Link(_REQUESTS, _l("Ask us to restrict the use of your data")),),
    ),
    Right(
        "portability",
        _l("Take your data elsewhere"),
        _l(
            "You may receive the data you gave us, and the data your use of the service "
            "created, in a common machine-readable format, to keep or to take to another service."
        ),
        (Link(_EXPORTS, _l("Download your data")),),
    ),
    Right(
        "objection",
        _l("Object"),
        _l(
            "Where we rely on legitimate interests, you may object, and we stop unless we have "
            "compelling reasons that override yours. You may always refuse marketing."
        ),
        (
            Link(_DATA, _l("Switch off model improvement")),
            Link(_MARKETING, _l("Stop marketing emails")),
            Link(_REQUESTS, _l("Object to another use of your data")),
        ),
    ),
    Right(
        "consent",
        _l("Withdraw your consent"),
        _l(
            "Where we rely on your consent, you may withdraw it at any time, as easily as you "
            "gave it. What we did before you withdrew it stays lawful."
        ),
        (
            Link(_COOKIES, _l("Change your cookie choices")),
            Link(_MARKETING, _l("Choose your marketing emails")),
        ),
    ),
    Right(
        "complaint",
        _l("Complain to a supervisory authority"),
        _l(
            "You may complain to the data-protection authority of the country where you live "
            "or work, or where you think the problem happened. We would be glad to hear from "
            "you first, so that we can put it right."
        ),
    ),
)


@dataclass(frozen=True)
class ResolvedLink:
    url: str
    label: object


def _resolve(link: Link) -> ResolvedLink | None:
    endpoint = next((e for e in link.endpoints if e in current_app.view_functions), None)
    return ResolvedLink(url_for(endpoint), link.label) if endpoint else None


def _rights() -> list[tuple[Right, list[ResolvedLink]]]:
    return [(right, [r for r in map(_resolve, right.links) if r]) for right in RIGHTS]


# --- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownVersion:
    version: str
    date: date
    changes: tuple[str, ...]


def _notice_context(datamap: DataMap, shown: ShownVersion) -> dict[str, object]:
    notice = get_notice()
    return {
        "datamap": datamap,
        "facts": notice_facts(datamap),
        "shown": shown,
        "notice": notice,
        "current": notice.current,
        "rights": _rights(),
        "country_name": country_name,
    }


def _shown(info: NoticeVersionInfo) -> ShownVersion:
    return ShownVersion(info.version, info.date, info.changes)


@bp.before_request
def _record_versions_once() -> None:
    # Lazily, on the first notice request of this process: start-up stays cheap and works
    # before the database is migrated.
    if current_app.extensions.get(RECORDED_FLAG):
        return
    record_versions(get_notice(), DATAMAP_PATH.read_text(encoding="utf-8"), datamap_fingerprint())
    current_app.extensions[RECORDED_FLAG] = True


# Rights in the rules table that the notice's list does not describe (US state laws).
OTHER_RIGHTS = {
    "opt_out_sale": (
        _l("Opt out of the sale or sharing of your personal information"),
        "consent.do_not_sell",
    ),
    "appeal": (_l("Appeal a decision on one of your requests"), "requests.index"),
}


@dataclass(frozen=True)
class PlaceRight:
    title: object
    url: str


def _place_rights(jurisdiction: Jurisdiction) -> list[PlaceRight]:
    """The rights the law grants where the reader is, in the table's order, each with where
    it is explained (the notice's section) or exercised."""
    described = {right.key: right for right in RIGHTS}
    shown = []
    for key in jurisdiction.rules.rights:
        if key in described:
            shown.append(PlaceRight(described[key].title, f"#right-{key}"))
        elif key in OTHER_RIGHTS and OTHER_RIGHTS[key][1] in current_app.view_functions:
            title, endpoint = OTHER_RIGHTS[key]
            shown.append(PlaceRight(title, url_for(endpoint)))
    return shown


@bp.get("")
def index() -> str:
    jurisdiction = reader_jurisdiction()
    return render_template(
        "policy/index.html",
        place=jurisdiction,
        place_name=jurisdiction_name(jurisdiction.code),
        place_rights=_place_rights(jurisdiction),
        period_words=period_words,
        unknown_place=UNKNOWN,
        **_notice_context(get_datamap(), _shown(get_notice().current)),
    )


@bp.get("/versions")
def versions() -> str:
    return render_template("policy/versions.html", versions=list(reversed(get_notice().versions)))


@bp.get("/versions/<version>")
def version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version):
        abort(404)  # no version was ever named so: not worth a query
    notice = get_notice()
    info = notice.find(version)
    row = stored_version(version)
    if row is None and info is None:
        abort(404)
    if info is not None:
        shown = _shown(info)
    else:  # recorded here, then removed from notice.yaml: what was recorded still stands
        shown = ShownVersion(row.version, date.fromisoformat(row.published_on), ())  # type: ignore[union-attr]
    snapshot = row.snapshot if row is not None else ""
    snapshot_map = parse_snapshot(snapshot)
    context = (
        _notice_context(snapshot_map, shown)
        if snapshot_map is not None
        else {"shown": shown, "current": notice.current}
    )
    return render_template(
        "policy/version.html",
        snapshot=snapshot,
        snapshot_map=snapshot_map,
        successor=_successor(version),
        **context,
    )


def _successor(version: str) -> NoticeVersionInfo | None:
    """The version that replaced `version`, if any."""
    versions = get_notice().versions
    names = [v.version for v in versions]
    if version in names:
        position = names.index(version)
        return versions[position + 1] if position + 1 < len(versions) else None
    return versions[-1]  # no longer listed: the current version has replaced it


# --- the "what changed" notice ----------------------------------------------------------------


@bp.app_context_processor
def _notice_banner() -> dict[str, object]:
    """The versions the signed-in person has not seen; no query (the user row is loaded)."""
    if not has_request_context() or not current_user.is_authenticated:
        return {}
    unseen = unseen_versions(
        get_notice(), current_user.notice_version_seen, current_user.created_at
    )
    return {"notice_banner": unseen} if unseen else {}


@bp.post("/notice/dismiss", endpoint="dismiss_notice")
@login_required
def dismiss_notice_view() -> Response | str:
    form = DismissNoticeForm()
    form.validate()  # CSRF is checked for every POST already; `next` is only a hint
    user = current_user._get_current_object()  # the row, not the proxy
    if dismiss_notice(user, get_notice().current.version):
        db.session.commit()
    if wants_fragment():
        return render_template("partials/_notice_banner.html", notice_dismissed=True)
    return redirect(safe_next_url(form.next.data) or url_for("main.index"), 303)
