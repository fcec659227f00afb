"""A pseudo-locale for tests, and the check that every visible word went through it.

The pseudo catalog translates every message of `translations/messages.pot` into an accented,
about 35% longer version of itself between markers: "Sign in" becomes "⟦Šíĝñ íñ ŀöŕ⟧". Pages
and emails rendered in it show at a glance which words did not pass through gettext: any
text outside the markers, unless it is data (a date, a name, an address, a prompt ...).

- Placeholders (`%(name)s`, `%s`, `{name}`) stay byte-identical and stay *outside* the
  markers ("⟦Ħéłłö ⟧%(name)s⟦!⟧"), so that what fills them is checked too: a translated
  sentence must not carry an untranslated word into the page through a placeholder.
- HTML tags, entities, `%%`, URLs and email addresses stay byte-identical, inside the markers.
- Plural messages get the same treatment for each form.

Besides messages.pot, the catalog takes the messages of a fresh extraction from the code (as
`make i18n-extract` does it), so text just wrapped in gettext is not reported before the .pot
is regenerated: `make i18n-check` fails on a stale .pot; this check is about text that never
reaches gettext (or that extraction does not see).

The catalog is written as `<dir>/eo/LC_MESSAGES/messages.mo`: Esperanto is a real CLDR locale
that the app does not ship, so Babel still formats its dates and numbers. `use_pseudo_locale`
adds that directory to an app's translation directories.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from html.parser import HTMLParser
from itertools import cycle, islice
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask

from app.config import PROJECT_ROOT

PSEUDO_LOCALE = "eo"
OPEN, CLOSE = "⟦", "⟧"
POT_PATH = PROJECT_ROOT / "translations" / "messages.pot"
LENGTHEN = 0.35

_ACCENTS = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "áƀçðéƒĝĥíĵķłṁñöṗǫŕšţüṽŵẋýžÁƁÇÐÉƑĜĤÍĴĶŁṀÑÖṖǪŔŠŢÜṼŴẊÝŽ",
)
_PAD = "ŀöŕéṁ íṗšüṁ ðöłöŕ šíţ áṁéţ çöñšéçţéţüŕ áðíṗíšçíñĝ éłíţ "
# Kept as they are, inside the markers: tags (with their attributes), entities, a literal
# percent sign, URLs and email addresses.
_KEEP = (
    r"<[A-Za-z/!][^>]*>"
    r"|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);"
    r"|%%"
    r"|(?:https?|mailto):[^\s<>\"']+"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
)
# Kept as they are, outside the markers: what the program fills in.
_NAMED = r"%\([^)]*\)[-#0+]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|\{\{.*?\}\}|\{[A-Za-z_][\w.]*\}"
_POSITIONAL = r"%[-#0+]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
_TOKENS = re.compile(f"(?P<keep>{_KEEP})|(?P<hole>{_NAMED})")
_TOKENS_PRINTF = re.compile(f"(?P<keep>{_KEEP})|(?P<hole>{_NAMED}|{_POSITIONAL})")


def pseudo_text(message: str, *, python_format: bool = False) -> str:
    """The pseudo translation of one message (see the module's docstring)."""
    tokens = _TOKENS_PRINTF if python_format else _TOKENS
    pieces: list[tuple[str, str]] = []  # (kind, text): text, keep or hole
    position = 0
    for match in tokens.finditer(message):
        if match.start() > position:
            pieces.append(("text", message[position : match.start()]))
        pieces.append(("keep" if match.group("keep") else "hole", match.group()))
        position = match.end()
    if position < len(message):
        pieces.append(("text", message[position:]))

    visible = sum(len(text) for kind, text in pieces if kind == "text")
    padding = round(visible * LENGTHEN)
    last_words = max(
        (i for i, (kind, text) in enumerate(pieces) if kind == "text" and text.strip()),
        default=None,
    )
    out = [OPEN]
    for index, (kind, text) in enumerate(pieces):
        if kind == "hole":
            out.append(CLOSE + text + OPEN)
        elif kind == "keep":
            out.append(text)
        else:
            accented = text.translate(_ACCENTS)
            if index == last_words and padding:
                words = accented.rstrip()
                pad = "".join(islice(cycle(_PAD), padding)).strip()
                accented = f"{words} {pad}{accented[len(words) :]}"
            out.append(accented)
    out.append(CLOSE)
    return "".join(out).replace(OPEN + CLOSE, "")


@cache  # the extraction takes a second or two; once per process is enough
def source_messages(pot_path: Path = POT_PATH) -> Catalog:
    """The messages of `messages.pot`, and of a fresh extraction from the code as
    `make i18n-extract` does it (babel.cfg, the same keywords): text just wrapped in gettext
    counts as translated before the .pot is regenerated (`make i18n-check` fails on a stale
    .pot; this test is about text that never reaches gettext)."""
    with pot_path.open("rb") as handle:
        template = read_po(handle)
    catalog = Catalog(domain="messages", fuzzy=False)
    for message in template:
        if message.id:
            catalog.add(message.id, context=message.context, flags=message.flags)
    with (PROJECT_ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "_n": (1, 2)}
    for _, _, message, _, context in extract_from_dir(
        str(PROJECT_ROOT), method_map, options_map, keywords=keywords
    ):
        catalog.add(message, context=context)
    return catalog


def build_pseudo_catalog(pot_path: Path = POT_PATH) -> Catalog:
    catalog = Catalog(locale=PSEUDO_LOCALE, domain="messages", fuzzy=False)
    for message in source_messages(pot_path):
        python_format = "python-format" in message.flags
        if isinstance(message.id, tuple | list):
            singular, plural = message.id[0], message.id[1]
            forms = [singular] + [plural] * (catalog.num_plurals - 1)
            string: str | tuple[str, ...] = tuple(
                pseudo_text(form, python_format=python_format) for form in forms
            )
        else:
            string = pseudo_text(message.id, python_format=python_format)
        catalog.add(message.id, string, context=message.context, flags=message.flags)
    return catalog


def write_pseudo_translations(directory: Path, pot_path: Path = POT_PATH) -> Path:
    """Compile the pseudo catalog to `<directory>/eo/LC_MESSAGES/messages.mo`; `directory`."""
    target = directory / PSEUDO_LOCALE / "LC_MESSAGES" / "messages.mo"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        write_mo(handle, build_pseudo_catalog(pot_path))
    return directory


def use_pseudo_locale(app: Flask, directory: Path) -> None:
    """Let `app` find the pseudo catalog next to its own.

    Flask-Babel 4 splits BABEL_TRANSLATION_DIRECTORIES once, in `init_app`, into the app's
    BabelConfiguration; it caches merged translations per locale in one dict shared by every
    app of the process. So: add the directory to the configuration, and forget any pseudo
    translations cached before it was there."""
    directories = app.extensions["babel"].translation_directories
    if str(directory) not in directories:
        directories.append(str(directory))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(directories)
    forget_pseudo_translations(app)


def forget_pseudo_translations(app: Flask) -> None:
    from app.extensions import babel

    with app.app_context():
        cache = babel.domain_instance.cache
    for key in [key for key in cache if key[0] == PSEUDO_LOCALE]:
        del cache[key]


# --- what is allowed outside the markers ------------------------------------------------------

LETTER = re.compile(r"[^\W\d_]")
WORD = re.compile(r"[^\W\d_]+")
URL = re.compile(r"(?:https?|mailto):[^\s<>\"']+|(?<!\S)/[\w\-./?=&%~]*")
EMAIL = re.compile(r"[\w.+*-]+@[\w-]+(?:\.[\w-]+)+")
# Spaces and punctuation around a value (quotes, guillemets, dashes, ellipsis).
EDGE_PUNCTUATION = " \t\r\n.,;:!?·•|()[]{}\"'“”„\u2018\u2019«»\u2039\u203a-\u2013—/…*#"


def babel_words(locale: str = PSEUDO_LOCALE) -> frozenset[str]:
    """Every word Babel itself writes in `locale`: month and day names, eras, time zone
    names, list and duration words, and the names of countries, languages, scripts and
    currencies (the app shows those through Babel, not through its catalog)."""
    loc = Locale.parse(locale)
    texts: list[str] = []
    start = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)  # a Monday
    for offset in range(0, 365, 5):
        moment = start + timedelta(days=offset, hours=offset % 14)
        for width in ("short", "medium", "long", "full"):
            texts.append(format_datetime(moment, width, locale=loc))
    for unit, amount in (("second", 1), ("minute", 1), ("hour", 1), ("day", 1), ("week", 1)):
        for count in (1, 2, 5):
            delta = timedelta(**{f"{unit}s": amount * count})
            texts.append(format_timedelta(delta, threshold=1.1, locale=loc))
            texts.append(format_timedelta(delta, add_direction=True, locale=loc))
    texts.append(format_list(["1", "2", "3"], locale=loc))
    for table in (loc.territories, loc.languages, loc.scripts, loc.currencies):
        texts.extend(table.values())
    texts.extend(loc.currency_symbols.values())
    for code in ("en", "de", "fr", "es", "pt_BR", "it", "nl", "ja", "zh_Hans", "ar"):
        texts.append(Locale.parse(code).get_display_name(loc) or "")
    return frozenset(word.casefold() for text in texts for word in WORD.findall(text))


@dataclass
class Allowed:
    """What may show outside the markers: data, not interface.

    `data`: values of the people's own records (names, prompts, file names, device names ...),
    each shown whole; `literals`: names of the deployment (the controller's name and
    address, ...) that may stand anywhere; `words`: the words Babel writes itself."""

    data: set[str] = field(default_factory=set)
    literals: set[str] = field(default_factory=set)
    words: frozenset[str] = field(default_factory=babel_words)

    def __post_init__(self) -> None:
        self.data = {normalise(value) for value in self.data if LETTER.search(value)}
        self._by_length = sorted((v for v in self.data if len(v) >= 2), key=len, reverse=True)

    def with_data(self, values: Iterable[str]) -> Allowed:
        """These rules, with more data (what one page shows as data)."""
        return Allowed(self.data | set(values), self.literals, self.words)

    def permits(self, text: str) -> bool:
        """Whether `text`, found outside the markers, is data rather than interface."""
        rest = normalise(text)
        if not LETTER.search(rest):
            return True
        for literal in sorted(self.literals, key=len, reverse=True):
            rest = rest.replace(literal, " ")
        rest = normalise(URL.sub(" ", EMAIL.sub(" ", rest)))
        if self._only_babel(rest) or self._is_data(rest):
            return True
        # Data next to Babel's words or punctuation ("Visa •••• 4242", "IMG_1.jpg, 12:00").
        for value in self._by_length:
            if value in rest:
                rest = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", " ", rest)
        return self._only_babel(rest)

    def _is_data(self, text: str) -> bool:
        core = text.strip(EDGE_PUNCTUATION)
        if core in self.data or text in self.data:
            return True
        if text.endswith("…"):  # cut short (an image's alternative text)
            prefix = text.rstrip("…").strip()
            return bool(prefix) and any(value.startswith(prefix) for value in self.data)
        return False

    def _only_babel(self, text: str) -> bool:
        return all(word.casefold() in self.words for word in WORD.findall(text))


def normalise(text: str) -> str:
    return " ".join(text.split())


# --- finding the text outside the markers -----------------------------------------------------

VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()  # noqa: SIM905
)
OPAQUE = frozenset({"script", "style", "template"})
# Elements whose content is data, not interface: dates and times, code, and text marked as
# written in another language (a language's own name in the menu, a person's own prompt).
DATA_ELEMENTS = frozenset({"time", "code", "kbd", "samp"})
VISIBLE_ATTRIBUTES = ("title", "aria-label", "alt", "placeholder")
BUTTON_INPUTS = frozenset({"submit", "button", "reset"})


@dataclass(frozen=True)
class Finding:
    where: str  # "text", or the attribute: "<img alt>"
    text: str


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, content is data or hidden from check)
        self.depth = 0
        self.unbalanced = False
        self.fragments: list[tuple[str, str]] = []  # (where, text outside the markers)

    @property
    def skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    @property
    def opaque(self) -> bool:
        return any(tag in OPAQUE for tag, _ in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        skip = (
            tag in OPAQUE
            or tag in DATA_ELEMENTS
            or ("lang" in values and tag != "html")
            or values.get("translate", "").lower() == "no"
        )
        if not (skip or self.skipping or self.opaque or self.depth):
            # Inside a translated message (depth > 0) an attribute is part of that message.
            for name in VISIBLE_ATTRIBUTES:
                if values.get(name):
                    self._outside(f"<{tag} {name}>", values[name], count=False)
            if tag == "input" and values.get("type", "").lower() in BUTTON_INPUTS:
                self._outside(f"<{tag} value>", values.get("value", ""), count=False)
        if tag not in VOID:
            self.stack.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if self.opaque:
            return
        if self.skipping:
            self._count(data)
        else:
            self._outside("text", data, count=True)

    def _count(self, data: str) -> None:
        for char in data:
            if char == OPEN:
                self.depth += 1
            elif char == CLOSE:
                self.unbalanced |= self.depth == 0
                self.depth = max(0, self.depth - 1)

    def _outside(self, where: str, data: str, *, count: bool) -> None:
        """Record the runs of `data` outside the markers (an attribute has its own markers)."""
        depth = self.depth if count else 0
        run: list[str] = []
        for char in data:
            if char == OPEN:
                if depth == 0 and run:
                    self.fragments.append((where, "".join(run)))
                    run = []
                depth += 1
            elif char == CLOSE:
                if depth == 0:
                    self.unbalanced = True
                depth = max(0, depth - 1)
            elif depth == 0:
                run.append(char)
        if run:
            self.fragments.append((where, "".join(run)))
        if count:
            self.depth = depth
        elif depth:
            self.unbalanced = True


def outside_markers_html(page: str) -> tuple[list[tuple[str, str]], bool]:
    """The visible text of an HTML page that lies outside the markers, as (where, text);
    and whether the markers were unbalanced (a translated text cut short)."""
    parser = _VisibleText()
    parser.feed(page)
    parser.close()
    return parser.fragments, parser.unbalanced or parser.depth != 0


def outside_markers_text(text: str) -> tuple[list[tuple[str, str]], bool]:
    """The same for plain text (a subject, a text body), line by line."""
    fragments: list[tuple[str, str]] = []
    depth = 0
    unbalanced = False
    for line in text.splitlines():
        run: list[str] = []
        for char in line:
            if char == OPEN:
                if depth == 0 and run:
                    fragments.append(("text", "".join(run)))
                    run = []
                depth += 1
            elif char == CLOSE:
                unbalanced |= depth == 0
                depth = max(0, depth - 1)
            elif depth == 0:
                run.append(char)
        if run:
            fragments.append(("text", "".join(run)))
    return fragments, unbalanced or depth != 0


def untranslated(
    fragments: list[tuple[str, str]], unbalanced: bool, allowed: Allowed
) -> list[Finding]:
    """The fragments that are interface, not data: text that escaped translation."""
    found = [
        Finding(where, normalise(text)) for where, text in fragments if not allowed.permits(text)
    ]
    if unbalanced:
        found.append(Finding("markers", f"unbalanced {OPEN}…{CLOSE}: a translation cut short"))
    return found


def untranslated_html(page: str, allowed: Allowed) -> list[Finding]:
    return untranslated(*outside_markers_html(page), allowed)


def untranslated_text(text: str, allowed: Allowed) -> list[Finding]:
    return untranslated(*outside_markers_text(text), allowed)
