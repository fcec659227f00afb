"""The words for data-subject requests, shared by the person's pages, the staff queue and the
emails: kinds, states, timeline events, reasons and manual steps, each translated.

The service layer stores keys; only these tables turn them into text, so a key without an
entry here is caught by a test rather than shown raw.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l

KIND_LABELS = {
    "delete_account": _l("Delete my account"),
    "correct": _l("Correct my data"),
    "restrict": _l("Restrict how my data is used"),
    "object": _l("Object to how my data is used"),
    "opt_out_sale": _l("Do not sell or share my personal information"),
    "withdraw_consent": _l("Withdraw my consent"),
    "access": _l("Get a copy of my data"),
    "appeal": _l("Appeal a refused request"),
    "child_report": _l("Report a child's account"),
    "question": _l("Ask the privacy team a question"),
}

KIND_DESCRIPTIONS = {
    "delete_account": _l(
        "Your account and the data in it are deleted after a cooling-off period in which you "
        "can change your mind. Records the law makes us keep stay, without your name."
    ),
    "correct": _l("Tell us what is wrong or missing, and what it should say."),
    "restrict": _l(
        "Ask us to keep your data but stop using it while something is checked, for example "
        "while we correct it."
    ),
    "object": _l(
        "Ask us to stop using your data for a purpose based on our legitimate interests, such "
        "as improving our models."
    ),
    "opt_out_sale": _l(
        "Stop any sale or sharing of your personal information for advertising. It takes "
        "effect as soon as you confirm."
    ),
    "withdraw_consent": _l(
        "Turn off every optional cookie and stop all marketing email. It takes effect as soon "
        "as you confirm."
    ),
    "access": _l("Download everything we hold about you, at once, from the download page."),
    "appeal": _l("Ask us to look again at a request we refused."),
    "child_report": _l(
        "Tell us about an account that belongs to a child under 13. We act on it within two "
        "days. You do not need an account to report one."
    ),
    "question": _l("Anything else about your data or your rights."),
}

STATUS_LABELS = {
    "unverified": _l("Waiting for your confirmation"),
    "open": _l("In progress"),
    "waiting": _l("Scheduled"),
    "erasing": _l("Deleting"),
    "done": _l("Done"),
    "refused": _l("Refused"),
    "cancelled": _l("Cancelled"),
    "expired": _l("Expired (never confirmed)"),
}

EVENT_LABELS = {
    "created": _l("Request made"),
    "verification_resent": _l("Confirmation link sent again"),
    "verified": _l("Request confirmed by email"),
    "cooling_off_started": _l("Cooling-off period started"),
    "erasure_started": _l("Deletion started"),
    "completed": _l("Completed"),
    "cancelled": _l("Cancelled"),
    "expired": _l("Expired without confirmation"),
    "refused": _l("Refused"),
    "extended": _l("Deadline extended"),
    "step_done": _l("Step done"),
}

REFUSAL_LABELS = {
    "identity": _l("We could not confirm that the request came from you."),
    "unfounded": _l("The request is manifestly unfounded."),
    "excessive": _l("The request repeats one we answered recently and is excessive."),
    "legal_obligation": _l("The law requires us to keep or use this data."),
    "no_data": _l("We hold no data of the kind the request is about."),
}

EXTENSION_LABELS = {
    "complex": _l("The request is complex and needs more time to answer fully."),
    "many_requests": _l("We received many requests from you at once."),
}

STEP_LABELS = {
    "data_checked": _l("Data checked"),
    "data_corrected": _l("Data corrected"),
    "recipients_told": _l("Recipients told of the change"),
    "processing_restricted": _l("Use of the data restricted"),
    "objection_assessed": _l("Objection assessed"),
    "processing_stopped": _l("Use of the data stopped"),
    "decision_reviewed": _l("Decision reviewed"),
    "account_identified": _l("Account identified"),
    "account_suspended": _l("Account suspended"),
    "account_deleted": _l("Account deleted"),
    "answered": _l("Answered"),
}

OUTCOME_LABELS = {
    "applied": _l("Your choice took effect."),
    "no_account": _l(
        "No account uses this address. Any marketing data held for it was deleted, and the "
        "address is on our do-not-email list."
    ),
    "done": _l("The privacy team answered your request."),
    "erased": _l("Your account was deleted."),
    "already_scheduled": _l(
        "The account that uses this address is already scheduled for deletion. The email "
        "about that deletion gives its date and a link to cancel it."
    ),
}


def label(table: dict[str, Any], key: str | None) -> str:
    """The text for `key`, or the key itself for one this version does not know (a request
    recorded by a newer version): never an error on a page."""
    if key is None:
        return ""
    return str(table.get(key, key))


TABLES = {
    "kind": KIND_LABELS,
    "kind_description": KIND_DESCRIPTIONS,
    "status": STATUS_LABELS,
    "event": EVENT_LABELS,
    "refusal": REFUSAL_LABELS,
    "extension": EXTENSION_LABELS,
    "step": STEP_LABELS,
    "outcome": OUTCOME_LABELS,
}


def request_text(table: str, key: str | None) -> str:
    """For templates: `request_text('kind', r.kind)`."""
    return label(TABLES[table], key)


def install(app: Flask) -> None:
    app.jinja_env.globals["request_text"] = request_text
