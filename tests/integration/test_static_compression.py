"""CSS and JavaScript go gzip-compressed to browsers that accept it; pages only in answer to
requests another site cannot have made (BREACH)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.config import PROJECT_ROOT
from app.web.static_files import GzipCache

GZIP = {"Accept-Encoding": "gzip, deflate, br, zstd"}
TEXT_ASSETS = ["/static/css/app.css", "/static/vendor/htmx.min.js"]


def _file(path: str) -> bytes:
    return (PROJECT_ROOT / path.lstrip("/")).read_bytes()


@pytest.mark.parametrize("path", TEXT_ASSETS)
def test_css_and_javascript_are_sent_gzipped_when_accepted(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers=GZIP)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    body = response.get_data()
    assert int(response.headers["Content-Length"]) == len(body)
    assert gzip.decompress(body) == _file(path)
    assert len(body) < len(_file(path)) / 2
    assert response.mimetype in ("text/css", "text/javascript")


@pytest.mark.parametrize("path", TEXT_ASSETS)
def test_the_browser_revalidates_the_gzipped_file_by_its_etag(
    client: FlaskClient, path: str
) -> None:
    first = client.get(path, headers=GZIP)
    plain = client.get(path)
    plain.close()  # a file sent as it is stays open until then
    assert first.headers["ETag"] != plain.headers["ETag"], "one ETag for two different bodies"
    again = client.get(path, headers={**GZIP, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert client.get(path, headers=GZIP).headers["ETag"] == first.headers["ETag"]


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0, br"])
def test_a_browser_without_gzip_gets_the_file_as_it_is(
    client: FlaskClient, accept: str | None
) -> None:
    headers = {"Accept-Encoding": accept} if accept else {}
    response = client.get("/static/css/app.css", headers=headers)
    body = response.get_data()
    response.close()
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert "Accept-Encoding" in response.headers["Vary"]
    assert body == _file("/static/css/app.css")


@pytest.mark.parametrize("path", ["/login", "/", "/policy", "/static/favicon.svg"])
def test_pages_a_browser_does_not_vouch_for_and_images_are_not_compressed(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path, headers=GZIP)
    response.close()
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize("site", ["cross-site", "same-site", "something-new"])
def test_pages_asked_for_by_another_site_are_not_compressed(client: FlaskClient, site: str) -> None:
    response = client.get("/policy", headers={**GZIP, "Sec-Fetch-Site": site})
    assert "Content-Encoding" not in response.headers
    assert "Sec-Fetch-Site" in response.headers["Vary"]
    assert "Your rights" in response.get_data(as_text=True)


@pytest.mark.parametrize("site", ["none", "same-origin"])
def test_pages_no_other_site_can_ask_for_are_compressed(client: FlaskClient, site: str) -> None:
    plain = client.get("/policy").get_data()
    response = client.get("/policy", headers={**GZIP, "Sec-Fetch-Site": site})

    assert response.headers["Content-Encoding"] == "gzip"
    assert {"Accept-Encoding", "Sec-Fetch-Site"} <= set(response.headers["Vary"].split(", "))
    body = response.get_data()
    assert int(response.headers["Content-Length"]) == len(body)
    assert len(body) < len(plain) / 3
    page = gzip.decompress(body).decode()
    assert page.startswith("<!doctype html>") and "Your rights" in page


def test_a_same_origin_page_without_gzip_is_sent_plain(client: FlaskClient) -> None:
    response = client.get(
        "/policy", headers={"Accept-Encoding": "identity", "Sec-Fetch-Site": "same-origin"}
    )
    assert "Content-Encoding" not in response.headers
    assert response.get_data(as_text=True).startswith("<!doctype html>")


@pytest.mark.parametrize(
    "path", ["/static/css/missing.css", "/static/../app/__init__.py", "/static/css/../../wsgi.py"]
)
def test_a_missing_or_outside_file_is_not_found(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers=GZIP)
    assert response.status_code == 404
    assert "Content-Encoding" not in response.headers


def test_a_changed_file_is_compressed_again(tmp_path: Path) -> None:
    cache = GzipCache()
    asset = tmp_path / "site.css"
    asset.write_text("body { color: black; }\n" * 50)
    first = cache.get(str(asset))
    assert cache.get(str(asset)) is first
    asset.write_text("body { color: navy; }\n" * 60)
    os.utime(asset, ns=(asset.stat().st_atime_ns, asset.stat().st_mtime_ns + 1_000_000_000))
    second = cache.get(str(asset))
    assert gzip.decompress(second.body) == asset.read_bytes()
    assert second.etag != first.etag
