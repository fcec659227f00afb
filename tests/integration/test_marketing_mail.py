"""Marketing email as the receiving mail server sees it: List-Unsubscribe (https and mailto) and
List-Unsubscribe-Post headers, a visible unsubscribe link and the manage link in the body; the
`marketing headers` command for the sending system."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMail, TopicSubscription
from app.services import marketing
from tests.support.mailbox import SMTPServer

BASE_URL = "http://127.0.0.1:5000"
READER = "reader@example.org"
HEADER = re.compile(
    r"<(?P<https>"
    + re.escape(BASE_URL)
    + r"/unsubscribe/(?P<token>[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+))>, "
    r"<mailto:privacy@example\.com\?subject=unsubscribe-(?P=token)>"
)


def _newsletter(app: Flask, email: str = READER, topic: str = "newsletter") -> int:
    with app.app_context():
        subscriber = marketing.find_subscriber(email)
        assert subscriber is not None
        mail = marketing.queue_marketing_mail(
            subscriber,
            topic,
            "marketing_newsletter",
            headline="Ten prompts for autumn",
            paragraphs=["Misty forests, warm lamplight and a fox or two."],
        )
        db.session.commit()
        return mail.id


def test_a_marketing_email_carries_the_unsubscribe_headers_and_links(
    smtp_app: Flask, smtp_server: SMTPServer
) -> None:
    with smtp_app.app_context():
        marketing.seed_subscriber(READER, ("newsletter", "offers"))
    mail_id = _newsletter(smtp_app)

    (received,) = smtp_server.wait_for(1)
    message = received.message
    assert message["Subject"] == "Ten prompts for autumn"
    # As it arrived: on one line, unencoded (mail providers do not decode RFC 2047 words here).
    raw = dict(message.raw_items())["List-Unsubscribe"]
    assert "=?" not in raw
    assert "\n" not in raw
    found = HEADER.fullmatch(str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    unsubscribe_url = found.group("https")
    text = received.text.replace("\r\n", "\n")
    assert f"Unsubscribe from “Newsletter”:\n{unsubscribe_url}\n" in text
    assert f'<a href="{unsubscribe_url}">Unsubscribe from “Newsletter”</a>' in received.html
    assert f"Choose which emails you get (no sign-in needed):\n{unsubscribe_url}/manage" in text
    assert f'<a href="{unsubscribe_url}/manage">Choose which emails you get</a>' in received.html
    assert "You get this email because you subscribed to “Newsletter”" in received.text
    assert "it is not marketing" not in received.text  # this one is marketing

    # The header's link is the one that works: one-click from it stops the newsletter only.
    response = smtp_app.test_client(use_cookies=False).post(
        unsubscribe_url.removeprefix(BASE_URL), data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    with smtp_app.app_context():
        statuses = dict(
            db.session.execute(select(TopicSubscription.topic, TopicSubscription.status)).all()
        )
        assert statuses == {"newsletter": "unsubscribed", "offers": "subscribed"}
        mail = db.session.get(OutboundMail, mail_id)
        assert mail is not None
        assert (mail.status, mail.headers, mail.text_body) == ("sent", None, None)


def test_marketing_email_goes_only_to_confirmed_topics(app: Flask) -> None:
    with app.app_context():
        marketing.seed_subscriber(READER, ("newsletter",))
        subscriber = marketing.find_subscriber(READER)
        assert subscriber is not None
        marketing.request_subscription(
            subscriber, "offers", source="page", confirm_url=lambda token: token
        )
    for topic in ("offers", "research"):  # waiting for confirmation; never asked for
        with pytest.raises(marketing.NotSubscribedError):
            _newsletter(app, topic=topic)
    with app.app_context():
        subscriber = marketing.find_subscriber(READER)
        assert subscriber is not None
        marketing.unsubscribe(subscriber, "*", source="link")
    with pytest.raises(marketing.NotSubscribedError):
        _newsletter(app)


# --- the command ------------------------------------------------------------------------------


def test_the_headers_command_prints_both_headers(app: Flask) -> None:
    with app.app_context():
        marketing.seed_subscriber(READER, ("newsletter",))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["marketing", "headers", "Reader@Example.org", "--topic", "offers"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("List-Unsubscribe: ")
    found = HEADER.fullmatch(lines[0].removeprefix("List-Unsubscribe: "))
    assert found, lines[0]
    assert lines[1] == "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    with app.app_context():
        subscriber = marketing.find_subscriber(READER)
        assert subscriber is not None
        assert marketing.read_unsubscribe_token(found.group("token")) == (subscriber.id, "offers")
    everything = runner.invoke(args=["marketing", "headers", READER])
    with app.app_context():
        token = HEADER.search(everything.output).group("token")  # type: ignore[union-attr]
        assert marketing.read_unsubscribe_token(token)[1] == "*"


def test_the_headers_command_refuses_unknown_addresses_and_topics(app: Flask) -> None:
    with app.app_context():
        marketing.seed_subscriber(READER, ("newsletter",))
    runner = app.test_cli_runner()

    unknown = runner.invoke(args=["marketing", "headers", "nobody@example.org"])
    bad_topic = runner.invoke(args=["marketing", "headers", READER, "--topic", "horoscopes"])

    assert unknown.exit_code != 0
    assert "nobody@example.org is not on the mailing list" in unknown.output
    assert bad_topic.exit_code != 0
    assert "unknown topic 'horoscopes'" in bad_topic.output
    with app.app_context():  # nobody was added on the way
        assert marketing.find_subscriber("nobody@example.org") is None


def test_the_keyed_hash_is_the_one_the_api_documents(app: Flask) -> None:
    key = app.config["SETTINGS"].suppression_key
    documented = hmac.new(key, b"reader@example.org", hashlib.sha256).hexdigest()
    with app.app_context():
        assert marketing.email_hash("  Reader@Example.ORG ") == documented
