"""The test helpers' own checks can fail: a page with each forbidden thing is caught."""

from __future__ import annotations

import pytest

from tests.support.web import category_counts, csrf_from_html, html_problems

CLEAN = """<!doctype html><html lang="en" dir="ltr"><head>
<link rel="stylesheet" href="/static/css/app.css">
<script src="/static/vendor/htmx.min.js" defer></script></head>
<body><a href="/login">Sign in</a> <a href="mailto:privacy@example.com">Write</a>
<form method="post" action="/logout"><input name="csrf_token" type="hidden" value="tok"></form>
</body></html>"""


def test_a_clean_page_passes() -> None:
    problems, html_attrs = html_problems(CLEAN)
    assert problems == []
    assert html_attrs == {"lang": "en", "dir": "ltr"}
    assert csrf_from_html(CLEAN) == "tok"


@pytest.mark.parametrize(
    "snippet",
    [
        "<script>alert(1)</script>",
        "<script src='/static/x.js'>alert(1)</script>",
        "<style>body{color:red}</style>",
        '<p style="color:red">x</p>',
        '<button onclick="go()">x</button>',
        '<img src="https://tracker.example/pixel.gif" alt="">',
        '<link rel="stylesheet" href="//cdn.example/app.css">',
        '<script src="http://cdn.example/htmx.js"></script>',
        '<form action="https://evil.example/collect"></form>',
        '<a href="javascript:alert(1)">x</a>',
    ],
)
def test_each_forbidden_thing_is_caught(snippet: str) -> None:
    problems, _ = html_problems(CLEAN.replace("</body>", snippet + "</body>"))
    assert problems


def test_overview_counts_are_read_per_category() -> None:
    page = """<tr data-category="prompts"><th scope="row">Prompts</th>
    <td class="num">1,234</td><td>-</td></tr>
    <tr data-category="images"><th scope="row">Images</th><td class="num">0</td></tr>"""
    assert category_counts(page) == {"prompts": 1234, "images": 0}
