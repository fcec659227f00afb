"""Fail when the translations are not fit to ship (run by `make i18n-check`, so by `make test`).

1. Every catalog passes `msgfmt --check` (placeholders, plural forms, header); where GNU
   gettext is not installed, Babel's own checks stand in for it.
2. Every shipped locale (the language menu's list in app/web/i18n.py) has no fuzzy and no
   missing entry: a page never falls back to English halfway through a sentence.
3. translations/messages.pot is what `make i18n-extract` makes of the code today, so no text
   added to the code is missing from the catalogs.

Prints what is wrong and exits 1, or prints a one-line summary and exits 0.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
sys.path.insert(0, str(ROOT))


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _is_missing(string: str | tuple[str, ...]) -> bool:
    if isinstance(string, (list, tuple)):
        return not all(string)
    return not string


def msgfmt_problems(po_path: Path) -> list[str]:
    if shutil.which("msgfmt"):
        result = subprocess.run(  # noqa: S603 -- our own file names, no shell
            ["msgfmt", "--check", "-o", "/dev/null", str(po_path)],  # noqa: S607 -- from PATH
            capture_output=True,
            text=True,
            check=False,
        )
        return (
            [line for line in result.stderr.splitlines() if line.strip()]
            if result.returncode
            else []
        )
    catalog = _read(po_path, po_path.parent.parent.name)
    return [
        f"{po_path}: {message.id!r}: {error}"
        for message, errors in catalog.check()
        for error in errors
    ]


def completeness_problems(po_path: Path) -> list[str]:
    catalog = _read(po_path, po_path.parent.parent.name)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy:
            problems.append(f"{po_path}: fuzzy: {message.id!r}")
        elif _is_missing(message.string):
            problems.append(f"{po_path}: not translated: {message.id!r}")
    return problems


def _keys(catalog: Catalog) -> set[tuple[str, str | None]]:
    return {
        (message.id if isinstance(message.id, str) else message.id[0], message.context)
        for message in catalog
        if message.id
    }


def template_problems(pybabel: str) -> list[str]:
    """The committed .pot against a fresh extraction from the code."""
    committed = TRANSLATIONS / "messages.pot"
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "messages.pot"
        subprocess.run(  # noqa: S603 -- the venv's pybabel, fixed arguments
            [pybabel, "-q", "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext",
             "-k", "_n:1,2", "-o", str(fresh), "."],
            cwd=ROOT,
            check=True,
        )  # fmt: skip
        added = _keys(_read(fresh)) - _keys(_read(committed))
        dropped = _keys(_read(committed)) - _keys(_read(fresh))
    problems = [f"{committed}: not extracted yet: {key[0]!r}" for key in sorted(added, key=str)]
    problems += [
        f"{committed}: no longer in the code: {key[0]!r}" for key in sorted(dropped, key=str)
    ]
    if problems:
        problems.append("run `make i18n-update`, translate, and commit the catalogs")
    return problems


def main() -> int:
    from app.web.i18n import LANGUAGES  # noqa: PLC0415 -- after sys.path is set

    pybabel = str(Path(sys.executable).with_name("pybabel"))
    catalogs = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
    problems: list[str] = []
    for po_path in catalogs:
        problems += msgfmt_problems(po_path)
        if po_path.parent.parent.name in LANGUAGES:
            problems += completeness_problems(po_path)
    problems += template_problems(pybabel)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in the translations")
        return 1
    shipped = ", ".join(sorted(LANGUAGES))
    print(
        f"translations: {len(catalogs)} catalogs pass msgfmt --check; shipped ({shipped}) complete"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
