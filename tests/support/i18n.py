"""The compiled catalogs the app reads, and what they say, for assertions on translated pages."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from app.config import PROJECT_ROOT

TRANSLATIONS = PROJECT_ROOT / "translations"


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[str]:
    """Compile every stale `messages.po` (the `.mo` files are not committed); the locales found."""
    locales = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        locale = po_path.parent.parent.name
        locales.append(locale)
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        # Written beside and renamed, so a parallel run (or the e2e suite) never reads half a file.
        fd, partial = tempfile.mkstemp(dir=mo_path.parent, suffix=".mo.part")
        with os.fdopen(fd, "wb") as handle:
            write_mo(handle, catalog)
        Path(partial).replace(mo_path)
    return locales


def load_translations(locale: str) -> Translations | None:
    translations = Translations.load(str(TRANSLATIONS), [locale])
    return None if type(translations) is NullTranslations else translations  # type: ignore[return-value]
