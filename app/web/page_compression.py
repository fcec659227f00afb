"""Pages sent gzip-compressed, but only in answer to requests no other site can have made.

Compressing a page that holds a secret (the CSRF token, the person's data) together with text
the request brought in (a query, a form value) lets someone who makes the victim's browser
send many such requests, and watches the sizes of the answers, recover the secret byte by byte
(BREACH). Browsers say where a request comes from (Fetch Metadata, `Sec-Fetch-Site`): "none"
(typed, bookmarked, opened from a mail program) and "same-origin" (our own pages, htmx) cannot
be made by another site; "cross-site" and "same-site" can, and a browser that does not say
gets the safe answer. Only the first two are compressed.
"""

from __future__ import annotations

import gzip

from flask import Flask, Response, request

UNFORGEABLE_ORIGINS = frozenset({"none", "same-origin"})
MIN_BYTES = 1024  # below this, the gzip header costs about what it saves
LEVEL = 6  # most of level 9's gain at a third of its time


def install(app: Flask) -> None:
    app.after_request(compress_page)


def compress_page(response: Response) -> Response:
    if response.mimetype != "text/html" or response.direct_passthrough or response.is_streamed:
        return response
    if "Content-Encoding" in response.headers:
        return response
    # Caches must keep the compressed and plain forms apart, and know on what they depend.
    response.vary.add("Accept-Encoding")
    response.vary.add("Sec-Fetch-Site")
    if request.headers.get("Sec-Fetch-Site") not in UNFORGEABLE_ORIGINS:
        return response
    if request.accept_encodings["gzip"] <= 0:
        return response
    body = response.get_data()
    if len(body) < MIN_BYTES:
        return response
    response.set_data(gzip.compress(body, compresslevel=LEVEL, mtime=0))
    response.content_encoding = "gzip"
    return response
