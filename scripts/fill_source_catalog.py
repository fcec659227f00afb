"""English is the source language: its catalog repeats each message as its own translation.

Run by `make i18n-update`, so the English catalog is always complete (a check for missing
entries then treats every shipped locale alike).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po


def fill(path: Path) -> int:
    with path.open("rb") as handle:
        catalog = read_po(handle)
    filled = 0
    for message in catalog:
        if isinstance(message.id, (list, tuple)):
            if not all(message.string):  # a plural: English has the same two forms
                message.string = tuple(message.id)
                filled += 1
        elif message.id and not message.string:
            message.string = message.id
            filled += 1
        message.flags.discard("fuzzy")
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100)
    return filled


if __name__ == "__main__":
    for name in sys.argv[1:] or ["translations/en/LC_MESSAGES/messages.po"]:
        print(f"{name}: {fill(Path(name))} message(s) filled")
