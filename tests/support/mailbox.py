"""A real SMTP server on 127.0.0.1 that keeps what it receives, for mail tests."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""  # type: ignore[union-attr]

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""  # type: ignore[union-attr]


class Mailbox:
    """The aiosmtpd handler: stores each message parsed, and lets a test wait for them."""

    def __init__(self) -> None:
        self._received: list[Received] = []
        self._changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 -- aiosmtpd's hook name
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._changed:
            self._received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), message)  # type: ignore[arg-type]
            )
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    def clear(self) -> None:
        with self._changed:
            self._received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """At least `count` messages, waiting up to `timeout` seconds for delivery threads."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} message(s) at the SMTP server, got {len(self._received)}"
                    )
                self._changed.wait(remaining)
            return list(self._received)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SMTPServer:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.host = "127.0.0.1"
        self.port = free_port()
        self._controller = Controller(self.mailbox, hostname=self.host, port=self.port)

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Received]:
        return self.mailbox.messages

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        return self.mailbox.wait_for(count, timeout)


def outbox_messages_to(outbox: Path, address: str) -> list[EmailMessage]:
    """The messages the app wrote to its outbox folder for `address`, oldest first."""
    messages = []
    for path in sorted(outbox.glob("*.eml")):
        with path.open("rb") as handle:
            message = BytesParser(policy=policy.default).parse(handle)
        if message["To"] == address:
            messages.append(message)
    return messages


def plain_text(message: EmailMessage) -> str:
    """The text/plain body of a message."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()  # type: ignore[union-attr]
