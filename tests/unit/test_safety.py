"""`next` targets: only paths on this site, never a way to send someone elsewhere."""

from __future__ import annotations

import pytest

from app.web.safety import safe_next_url


@pytest.mark.parametrize(
    "target",
    ["/", "/data", "/data/prompts?page=2", "/requests#latest", "/%2F%2Fevil.example"],
)
def test_local_paths_are_kept(target: str) -> None:
    assert safe_next_url(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "//evil.example",
        "//evil.example/path",
        "///evil.example",
        "https://evil.example",
        "http://evil.example/data",
        "javascript:alert(1)",
        "data:text/html,hi",
        "evil.example",
        "data",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\nLocation: https://evil.example",
        "/\x00evil",
        " /data",
    ],
    ids=repr,
)
def test_anything_else_is_refused(target: str | None) -> None:
    assert safe_next_url(target) is None
