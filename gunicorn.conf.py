"""gunicorn's settings, read by any `gunicorn wsgi:app` started in this folder.

Its own lines (start, workers, errors) go through the app's handler: the same format
(LOG_FORMAT) and the same redaction. There is no access log: the app writes one line per
request itself, with the request id and without the tokens that unsubscribe and confirmation
links carry in their path.
"""

import os

_level = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"

accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": _level, "handlers": ["privacy_center"]},
    "loggers": {
        "gunicorn.error": {"level": _level, "handlers": [], "propagate": True},
        # Off: gunicorn logs the access lines at INFO. An operator who wants them anyway
        # (LOG_LEVEL has no say here) gets them through the same handler by lowering this.
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
    "handlers": {"privacy_center": {"()": "app.logs.handler_from_environment"}},
    "formatters": {},
}
