"""Demo accounts with a year of realistic platform data (demo mode only).

The privacy center shows people what the platform holds about them, so a demo is only
convincing with the kind of data the platform really holds: prompts in many languages, image
files on disk, devices, invoices, support threads. Everything here is generated from a fixed
random seed per account, so every run builds the same content (only the timestamps move,
because they are relative to "now" and the data should always cover the past year).

`seed_demo` is idempotent: an account that already exists is left alone. Each ordinary account
is written in one transaction, so a crash leaves whole accounts or none. The heavy benchmark
account is too big for one transaction; it is committed in batches and its subscription row is
written last as a "complete" marker, so a half-built heavy account from a crashed run is
recognised, removed and rebuilt.
"""

from __future__ import annotations

import io
import random
import string
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from PIL import Image, ImageChops, ImageDraw, ImageOps
from sqlalchemy import delete, insert, select

from app.extensions import db
from app.models import (
    BillingAddress,
    DeviceRecord,
    GeneratedImage,
    Invoice,
    PaymentMethod,
    Prompt,
    SessionActivity,
    Subscription,
    SupportMessage,
    Upload,
    UsageEvent,
    User,
    utcnow,
)
from app.services import media
from app.services.auth import find_user_by_email, hash_password
from app.services.marketing import seed_subscriber

BATCH_SIZE = 5000
_T = TypeVar("_T")
YEAR = timedelta(days=365)

# --------------------------------------------------------------------------------------------
# Content. Prompts are (language, text); people iterate on an idea, so each base prompt is
# reused with different modifiers. Modifiers stay in English whatever the prompt's language,
# as they do on real image platforms.
# --------------------------------------------------------------------------------------------

PromptSeed = tuple[str, str]

DEMO_PROMPTS: tuple[PromptSeed, ...] = (
    ("en", "a watercolor fox in a misty forest at dawn 🦊"),
    ("en", "cozy reading nook by a rainy window, warm lamplight, hyperrealistic"),
    ("en", "isometric pixel art of a tiny island village with a lighthouse"),
    ("en", "portrait of an elderly fisherman with a weathered face, dramatic rim light"),
    ("en", "a cat astronaut floating above Earth, retro 70s sci-fi poster 🚀🐱"),
    ("en", "minimalist logo for a coffee shop called 'Morning Orbit', flat vector"),
    ("en", "cyberpunk street market at night, neon signs reflected in puddles"),
    ("en", "children's book illustration of a bear baking bread 🍞"),
    ("en", "product photo of a ceramic mug on a linen tablecloth, soft daylight"),
    ("en", "ancient library inside a giant tree, god rays, fantasy concept art"),
    ("en", "a steaming bowl of ramen, top-down food photography 🍜"),
    ("en", "low-poly mountain landscape at sunset, pastel colors"),
    ("en", "birthday card with balloons and a corgi wearing a party hat 🎉🐶"),
    ("en", "blueprint-style technical drawing of a steam locomotive"),
    ("en", "a lighthouse in a storm, oil painting with thick impasto"),
    ("en", "sticker design of a happy avocado, white border, kawaii 🥑"),
    ("en", "timber house on a Norwegian fjord, architectural visualization"),
    ("en", "a jellyfish made of stained glass glowing in deep water"),
    ("en", "wedding invitation background with eucalyptus leaves, watercolor"),
    ("en", "a robot gardener watering tomatoes on a rooftop garden 🤖🍅"),
    ("de", "ein Aquarell vom Hamburger Hafen im Nebel, sanfte Blautöne"),
    ("de", "gemütliche Berghütte im Schnee bei Nacht, Lichterketten ❄️"),
    ("de", "Porträt einer Katze im Stil eines Renaissance-Gemäldes"),
    ("de", "Schwarzwald im Herbst, Morgennebel, Fotografie"),
    ("de", "Brezel und Weißwurst auf einem Holzbrett, Food-Fotografie 🥨"),
    ("de", "Märchenschloss auf einem Felsen, Illustration für ein Kinderbuch"),
    ("fr", "un café parisien sous la pluie, style impressionniste ☕"),
    ("fr", "un dragon endormi sur une pile de livres anciens"),
    ("fr", "affiche rétro pour un festival de jazz à Lyon, années 50"),
    ("fr", "champ de lavande en Provence au coucher du soleil 💜"),
    ("fr", "portrait d'une boulangère souriante, lumière naturelle"),
    ("es", "un mercado mexicano lleno de color al mediodía, fotografía callejera"),
    ("es", "una casa de campo andaluza con buganvillas, acuarela 🌸"),
    ("es", "un astronauta tocando la guitarra en la luna"),
    ("es", "ilustración de un pulpo leyendo el periódico 🐙"),
    ("es", "tapas en una mesa de madera, luz cálida de atardecer"),
    ("ja", "桜の木の下で本を読む少女、水彩画風 🌸"),
    ("ja", "雨の夜の東京の路地裏、ネオン、シネマティック"),
    ("ja", "富士山と紅葉、浮世絵スタイル"),
    ("ja", "かわいい柴犬のステッカー、白い縁取り 🐕"),
    ("ja", "未来的な日本庭園、ミニマリスト建築"),
    ("ar", "سوق قديم في مراكش عند الغروب، ألوان دافئة"),
    ("ar", "قطة تجلس على نافذة مطلة على البحر، رسم زيتي 🐈"),
    ("ar", "فانوس رمضان مضيء في شارع هادئ ليلاً 🌙"),
    ("ar", "واحة في الصحراء تحت سماء مليئة بالنجوم"),
    ("zh", "水墨画风格的山水，云雾缭绕的山峰"),  # noqa: RUF001 -- Chinese punctuation
    ("zh", "一只熊猫在竹林里吃竹子，皮克斯风格 🐼"),  # noqa: RUF001 -- Chinese punctuation
    ("zh", "赛博朋克风格的上海外滩夜景"),
    ("zh", "中秋节的月饼和灯笼，温暖的灯光 🥮"),  # noqa: RUF001 -- Chinese punctuation
    ("it", "una Vespa rossa parcheggiata in un vicolo di Roma, pellicola 35mm 🛵"),
    ("pt", "um farol na costa de Portugal ao amanhecer, pintura a óleo"),
    ("ko", "한옥 마을의 겨울 풍경, 눈 내리는 밤"),
)

DEMO2_PROMPTS: tuple[PromptSeed, ...] = (
    ("de", "modernes Einfamilienhaus mit Flachdach, Architekturvisualisierung"),
    ("de", "Produktfoto einer Sneaker-Kollektion auf pastellfarbenem Hintergrund 👟"),
    ("de", "Golden-Retriever-Welpe im Laub, warmes Herbstlicht 🍂"),
    ("de", "Logo für eine Bäckerei namens 'Backstube Sonnenschein', minimalistisch"),
    ("de", "Skyline von San Francisco im Nebel, Aquarell 🌁"),
    ("de", "Weinberg im Napa Valley bei Sonnenuntergang, Ölgemälde"),
    ("de", "Comic-Illustration eines Eichhörnchens als Detektiv 🐿️"),
    ("de", "Bücherregal voller Zimmerpflanzen, skandinavischer Stil"),
    ("en", "surfer at Ocean Beach at golden hour, film grain 🏄"),
    ("en", "a vintage camper van on Highway 1, polaroid style"),
    ("en", "isometric illustration of a home office with a standing desk"),
    ("en", "macro photo of a dew drop on a redwood leaf"),
    ("en", "menu background for a taco truck, bright hand lettering 🌮"),
    ("en", "cute monster mascot for a coding bootcamp, 3D render"),
    ("en", "a suspension bridge built from toy bricks, tilt-shift"),
    ("en", "a lemon tree in a terracotta pot, botanical illustration 🍋"),
)

MODIFIERS: tuple[str, ...] = (
    "cinematic lighting",
    "highly detailed",
    "golden hour",
    "soft pastel palette",
    "shallow depth of field",
    "35mm film",
    "wide angle",
    "studio lighting",
    "muted colors",
    "8k",
)

NEGATIVE_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": (
        "blurry, low quality, watermark, text",
        "extra fingers, deformed hands, distorted face",
        "oversaturated, jpeg artifacts, cropped",
        "people, cars, signage",
    ),
    "de": ("unscharf, Wasserzeichen, Schrift", "verzerrte Hände, überbelichtet"),
    "fr": ("flou, filigrane, texte",),
    "es": ("borroso, marca de agua, texto",),
}

MODELS: tuple[str, ...] = ("gpt-image-2", "gpt-image-2", "gpt-image-2-mini", "gpt-image-1")
STYLES: tuple[str, ...] = (
    "photographic",
    "watercolor",
    "anime",
    "digital-art",
    "cinematic",
    "line-art",
    "3d-render",
    "oil-painting",
)
SAMPLERS: tuple[str, ...] = ("euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim")
# Small on purpose: the files must be real images, but a demo database should stay light.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (256, 256), (256, 192), (192, 256))
FOLLOW_UP_FEATURES: tuple[tuple[str, int], ...] = (("upscale", 2), ("variation", 1))

# --------------------------------------------------------------------------------------------
# Accounts.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    identifier: str
    browser: str
    operating_system: str
    client: str  # web | ios | android, as the session table records it


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    exp_month: int
    years_valid: int  # expiry relative to today, so the demo cards never look expired

    @property
    def label(self) -> str:
        return f"{self.brand} •••• {self.last4}"


@dataclass(frozen=True)
class Plan:
    name: str
    label: str
    price_cents: int
    tax_rate: float  # included in the price, as for consumers in the EU
    currency: str
    months_billed: int
    credit_balance: int


@dataclass(frozen=True)
class Address:
    line1: str
    line2: str | None
    city: str
    postal_code: str
    region: str | None
    country: str


@dataclass(frozen=True)
class Ticket:
    reference: str
    subject: str
    messages: tuple[tuple[str, str], ...]  # (direction, body); "in" is from the person


@dataclass(frozen=True)
class Profile:
    """One demo account: who it is and how much of each kind of data it has."""

    email: str
    password: str
    name: str
    locale: str
    country: str | None
    region: str | None = None
    is_staff: bool = False
    seed: int = 0
    prompt_pool: tuple[PromptSeed, ...] = ()
    prompts: int = 0
    images: int = 0
    uploads: int = 0
    upload_names: tuple[str, ...] = ()
    sessions: int = 0
    device_record_share: float = 0.65  # share of sessions that leave an access record
    devices: tuple[Device, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    cards: tuple[Card, ...] = ()
    address: Address | None = None
    plan: Plan | None = None
    invoice_code: str = ""
    tickets: tuple[Ticket, ...] = ()
    unique_image_renders: bool = True  # False: stamp copies of a few templates (heavy user)
    # Film grain makes a PNG weigh what a generated image does (about 160 KB at 256 px rather
    # than 2 KB), so that benchmarks on the heavy account copy realistic amounts of bytes.
    image_grain: bool = False
    image_models: tuple[str, ...] = MODELS


DEMO = Profile(
    email="demo@example.com",
    password="demo-password",  # noqa: S106 -- the published demo password (DESIGN §5)
    name="Alex Morgan",
    locale="en",
    country="DE",
    seed=20240501,
    prompt_pool=DEMO_PROMPTS,
    prompts=240,
    images=60,
    uploads=10,
    upload_names=(
        "IMG_2041.jpg",
        "IMG_2187.JPG",
        "PXL_20240612_181522.jpg",
        "sketch_fox.jpg",
        "photo-2024-09-03.jpeg",
        "DSC04512.JPG",
        "reference_mug.jpg",
        "WhatsApp Image 2025-02-08 at 19.41.07.jpeg",
        "moodboard_01.jpg",
        "IMG_3310.jpg",
    ),
    sessions=160,
    devices=(
        Device("d-7f3a9c21e4b84d0f", "Firefox 128", "Windows 11", "web"),
        Device("d-2b81e0c9a6f34477", "Safari 17", "iOS 17", "ios"),
        Device("d-c40d5e1a93b2f865", "Chrome 126", "macOS 14", "web"),
    ),
    ip_addresses=(
        "192.0.2.17",
        "192.0.2.84",
        "198.51.100.23",
        "198.51.100.140",
        "2001:db8:4f1a::1c",
        "2001:db8:4f1a:0:8d3e:21ff:fe0a:7b9c",
    ),
    cards=(Card("Visa", "4242", 8, 2), Card("Mastercard", "4444", 11, 1)),
    address=Address("Musterstraße 17", "3. OG", "Berlin", "10115", None, "DE"),
    plan=Plan("pro", "Pro", 1999, 0.19, "EUR", 12, 1840),
    invoice_code="AM",
    tickets=(
        Ticket(
            "T-10482",
            "Credits taken for failed generations",
            (
                (
                    "in",
                    "Hi, three generations failed yesterday evening with a timeout, but the "
                    "credits were still taken. Could you check?",
                ),
                (
                    "out",
                    "Thanks for letting us know. We found the three failed jobs and refunded "
                    "6 credits to your balance. Sorry for the trouble!",
                ),
                ("in", "Great, thank you for the quick help 🙏"),
            ),
        ),
        Ticket(
            "T-10977",
            "VAT number on invoices",
            (
                (
                    "in",
                    "Can you add my VAT number to my invoices? I use the images for my "
                    "freelance design work.",
                ),
                (
                    "out",
                    "You can add a VAT number under Billing → Invoice details; it will appear "
                    "on every invoice from then on.",
                ),
            ),
        ),
        Ticket(
            "T-11305",
            "Commercial use of generated images",
            (
                ("in", "Am I allowed to use generated images on products I sell (mugs, prints)?"),
                (
                    "out",
                    "Yes: on paid plans you may use the images you generate commercially. "
                    "Please check the usage policy for the few exceptions.",
                ),
            ),
        ),
    ),
)

DEMO2 = Profile(
    email="demo2@example.com",
    password="demo-password",  # noqa: S106 -- the published demo password (DESIGN §5)
    name="Jonas Becker",
    locale="de",
    country="US",
    region="CA",
    seed=20240917,
    prompt_pool=DEMO2_PROMPTS,
    prompts=40,
    images=10,
    uploads=3,
    upload_names=("PXL_20250301_094410.jpg", "hund_im_park.jpg", "IMG_7781.JPG"),
    sessions=45,
    devices=(
        Device("d-91e6b0f2d3c84a5e", "Chrome 127", "Android 14", "android"),
        Device("d-5ac3f7e8b1d94c20", "Edge 126", "Windows 10", "web"),
    ),
    ip_addresses=(
        "203.0.113.45",
        "203.0.113.201",
        "198.51.100.77",
        "2001:db8:c0de:12::5",
        "2001:db8:c0de:12:3a1f:7cff:fe42:1e0d",
    ),
    cards=(Card("Visa", "1881", 3, 3),),
    address=Address("88 Sample Lane", "Apt 4B", "Palo Alto", "94301", "CA", "US"),
    plan=Plan("starter", "Starter", 999, 0.0, "USD", 6, 120),
    invoice_code="JB",
    tickets=(
        Ticket(
            "T-20117",
            "Rechnung auf Deutsch?",
            (
                ("in", "Hallo, kann ich meine Rechnungen auch auf Deutsch bekommen?"),
                (
                    "out",
                    "Hallo Jonas, ja: stell die Sprache in deinem Konto auf Deutsch, dann "
                    "kommen auch die Rechnungen auf Deutsch.",
                ),
            ),
        ),
    ),
)

STAFF = Profile(
    email="staff@example.com",
    password="staff-password",  # noqa: S106 -- the published demo password (DESIGN §5)
    name="Sam Rivera (Privacy team)",
    locale="en",
    country="DE",
    is_staff=True,
    seed=20240101,
)

HEAVY = Profile(
    email="heavy@example.com",
    password="demo-password",  # noqa: S106 -- the published demo password (DESIGN §5)
    name="Hannah Weber",
    locale="en",
    country="FR",
    seed=20250505,
    prompt_pool=DEMO_PROMPTS + DEMO2_PROMPTS,
    devices=(
        Device("d-0e4f8a2c6b1d3579", "Firefox 129", "Ubuntu 24.04", "web"),
        Device("d-a1b2c3d4e5f60718", "Safari 17", "iPadOS 17", "ios"),
        Device("d-f9e8d7c6b5a49382", "Chrome 127", "ChromeOS", "web"),
    ),
    ip_addresses=("192.0.2.210", "198.51.100.211", "2001:db8:beef::7"),
    cards=(Card("Visa", "0077", 6, 4),),
    address=Address("12 rue de l'Exemple", None, "Lyon", "69002", None, "FR"),
    plan=Plan("studio", "Studio", 4999, 0.20, "EUR", 12, 50000),
    invoice_code="HW",
    tickets=(
        Ticket(
            "T-30001",
            "Bulk download",
            (
                ("in", "Is there a way to download all my images at once?"),
                ("out", "Yes: the privacy center's export includes every image file."),
            ),
        ),
    ),
    unique_image_renders=False,
    image_grain=True,
)

ACCOUNTS: tuple[Profile, ...] = (DEMO, DEMO2, STAFF)


def heavy_profile(prompts: int) -> Profile:
    """The benchmark account scaled to `prompts`: N prompts, N/10 images, modest extras."""
    return replace(
        HEAVY,
        prompts=prompts,
        images=prompts // 10,
        uploads=min(50, prompts // 1000),
        upload_names=(),
        sessions=min(2000, max(50, prompts // 25)),
    )


# --------------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------------


def seed_demo(heavy: int | None = None, echo: Callable[[str], None] = print) -> str:
    """Create the demo accounts that do not exist yet; return a short report of what happened."""
    lines = [_seed_account(profile, echo) for profile in ACCOUNTS]
    created = [line for line in lines if line.startswith("created")]
    if heavy:
        heavy_line = _seed_heavy(heavy, echo)
        lines.append(heavy_line)
        if heavy_line.startswith("created"):
            created.append(heavy_line)
    marketing_line = _seed_marketing()
    if marketing_line:
        lines.append(marketing_line)
        created.append(marketing_line)
    if not created:
        return "Demo data already present; nothing changed.\n" + "\n".join(lines)
    return "\n".join(lines)


def _seed_account(profile: Profile, echo: Callable[[str], None]) -> str:
    if find_user_by_email(profile.email) is not None:
        return f"{profile.email} already exists, left unchanged"
    echo(f"creating {profile.email} …")
    counts = _AccountBuilder(profile, commit_each_batch=False).build()
    return f"created {profile.email}: {_describe(counts)}"


def _seed_heavy(prompts: int, echo: Callable[[str], None]) -> str:
    profile = heavy_profile(prompts)
    existing = find_user_by_email(profile.email)
    if existing is not None:
        if _is_complete(existing):
            return f"{profile.email} already exists, left unchanged (heavy data is not resized)"
        echo(f"{profile.email} is incomplete (an earlier run stopped); removing it first")
        _remove_account(existing)
    echo(f"creating {profile.email} with {prompts} prompts and {profile.images} images …")
    counts = _AccountBuilder(profile, commit_each_batch=True).build()
    return f"created {profile.email}: {_describe(counts)}"


# Marketing topics of the demo addresses (confirmed long ago); reader@ has no account: it
# stands for the newsletter-only readers who manage their emails by a link.
DEMO_MARKETING = (
    ("demo@example.com", ("product_updates", "newsletter")),
    ("demo2@example.com", ("offers",)),
    ("reader@example.com", ("newsletter",)),
)


def _seed_marketing() -> str | None:
    """Subscribe the demo addresses that are not subscribers yet; None when none was new."""
    added = []
    for email, topics in DEMO_MARKETING:
        user = find_user_by_email(email)
        if seed_subscriber(
            email,
            topics,
            locale=user.locale if user else "en",
            user_id=user.id if user else None,
            confirmed_at=utcnow() - timedelta(days=90),
        ):
            added.append(email)
    return f"created marketing subscriptions for {', '.join(added)}" if added else None


def _describe(counts: Counter[str]) -> str:
    parts = [f"{number} {table}" for table, number in counts.items() if number]
    return ", ".join(parts) if parts else "account only"


def _is_complete(user: User) -> bool:
    # The subscription is written last, so its presence means every batch was committed.
    return (
        db.session.scalar(select(Subscription.id).where(Subscription.user_id == user.id))
        is not None
    )


def _remove_account(user: User) -> None:
    """Delete a half-built account: its files, its invoices (kept on erasure), then the rest."""
    for model in (GeneratedImage, Upload):
        for key in db.session.scalars(select(model.storage_key).where(model.user_id == user.id)):
            media.delete(key)
    db.session.execute(delete(Invoice).where(Invoice.user_id == user.id))
    db.session.execute(delete(User).where(User.id == user.id))  # the rest cascades
    db.session.commit()


# --------------------------------------------------------------------------------------------
# Building one account.
# --------------------------------------------------------------------------------------------


@dataclass
class _Visit:
    start: datetime
    end: datetime
    device: Device


@dataclass(frozen=True)
class _Made:
    """A row the account's later rows refer to (images follow prompts, usage follows images)."""

    kind: str  # "prompt" | "image" | "upload"
    id: int
    created_at: datetime
    model: str = ""


class _AccountBuilder:
    """Writes one account's rows and files; rolls back and removes its files on failure."""

    def __init__(self, profile: Profile, *, commit_each_batch: bool) -> None:
        self.profile = profile
        self.rng = random.Random(profile.seed)  # noqa: S311 -- reproducible demo data, not secrets
        self.now = utcnow().replace(microsecond=0)
        self.commit_each_batch = commit_each_batch
        self.counts: Counter[str] = Counter()
        self.user_id = 0
        self._uncommitted_keys: list[str] = []
        self._images = _ImageSource(
            self.rng, unique=profile.unique_image_renders, grain=profile.image_grain
        )

    def build(self) -> Counter[str]:
        try:
            self._build()
        except BaseException:
            self._abort()
            raise
        return self.counts

    def _build(self) -> None:
        visits = self._visits()
        self._create_user(visits)
        self._add_sessions(visits)
        self._add_devices(visits)
        prompts = self._add_prompts(visits)
        images = self._add_images(prompts)
        uploads = self._add_uploads(prompts)
        self._add_usage(images, uploads)
        self._add_billing()
        self._add_support()
        self._add_subscription()  # last: marks the account complete (see module docstring)
        self._commit()

    # -- plumbing --------------------------------------------------------------------------

    def _insert(self, model: type[db.Model], rows: Sequence[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, BATCH_SIZE):
            db.session.execute(insert(model), chunk)
            self.counts[model.__tablename__] += len(chunk)
            if self.commit_each_batch:
                self._commit()

    def _read_back(self, kind: str, model: Any) -> list[_Made]:
        """The account's rows of `model` in time order, with their new ids.

        Read back rather than taken from INSERT ... RETURNING: returning ids in parameter
        order makes SQLAlchemy insert one row per statement on PostgreSQL, which is ten
        times slower for the heavy account.
        """
        extra = (model.model,) if kind == "image" else ()
        query = (
            select(model.id, model.created_at, *extra)
            .where(model.user_id == self.user_id)
            .order_by(model.created_at, model.id)
        )
        return [_Made(kind, *row) for row in db.session.execute(query)]

    def _store(self, data: bytes, extension: str) -> str:
        key = media.store_bytes(data, extension)
        self._uncommitted_keys.append(key)
        return key

    def _commit(self) -> None:
        db.session.commit()
        self._uncommitted_keys.clear()

    def _abort(self) -> None:
        # Files written for rows that were never committed would be orphans nobody can erase.
        db.session.rollback()
        for key in self._uncommitted_keys:
            media.delete(key)
        self._uncommitted_keys.clear()

    def _moment_in_visit(self, visit: _Visit) -> datetime:
        seconds = (visit.end - visit.start).total_seconds()
        return visit.start + timedelta(seconds=int(self.rng.uniform(0, seconds)))

    # -- account and activity --------------------------------------------------------------

    def _visits(self) -> list[_Visit]:
        """The sessions of the past year; prompts, devices and usage all happen inside them."""
        devices = self.profile.devices
        visits = []
        for _ in range(self.profile.sessions):
            start = self.now - timedelta(seconds=self.rng.randint(3600, int(YEAR.total_seconds())))
            # The first device is the person's main one, as it is for most people.
            device = devices[0] if self.rng.random() < 0.6 else self.rng.choice(devices)
            end = start + timedelta(minutes=self.rng.randint(4, 95))
            visits.append(_Visit(start, end, device))
        return sorted(visits, key=lambda visit: visit.start)

    def _create_user(self, visits: list[_Visit]) -> None:
        profile = self.profile
        user = User(
            email=profile.email,
            name=profile.name,
            password_hash=hash_password(profile.password),
            locale=profile.locale,
            country=profile.country,
            region=profile.region,
            is_staff=profile.is_staff,
            created_at=self.now - YEAR - timedelta(days=self.rng.randint(10, 60)),
            last_sign_in_at=visits[-1].start if visits else None,
        )
        db.session.add(user)
        db.session.flush()
        self.user_id = user.id
        if self.commit_each_batch:
            self._commit()

    def _add_sessions(self, visits: list[_Visit]) -> None:
        rows = [
            {
                "user_id": self.user_id,
                "started_at": visit.start,
                "ended_at": visit.end,
                "pages_viewed": self.rng.randint(2, 60),
                "client": visit.device.client,
            }
            for visit in visits
        ]
        self._insert(SessionActivity, rows)

    def _add_devices(self, visits: list[_Visit]) -> None:
        share = self.profile.device_record_share
        rows = [
            {
                "user_id": self.user_id,
                "ip_address": self.rng.choice(self.profile.ip_addresses),
                "browser": visit.device.browser,
                "operating_system": visit.device.operating_system,
                "device_identifier": visit.device.identifier,
                "accessed_at": visit.start,
            }
            for visit in visits
            if self.rng.random() < share
        ]
        self._insert(DeviceRecord, rows)

    # -- creative --------------------------------------------------------------------------

    def _add_prompts(self, visits: list[_Visit]) -> list[_Made]:
        if not self.profile.prompts:
            return []
        rows = sorted(
            (self._prompt_row(self.rng.choice(visits)) for _ in range(self.profile.prompts)),
            key=lambda row: row["created_at"],
        )
        self._insert(Prompt, rows)
        return self._read_back("prompt", Prompt)

    def _prompt_row(self, visit: _Visit) -> dict[str, Any]:
        language, text = self.rng.choice(self.profile.prompt_pool)
        if self.rng.random() < 0.55:
            text = f"{text}, {', '.join(self.rng.sample(MODIFIERS, self.rng.randint(1, 3)))}"
        negative = None
        if self.rng.random() < 0.3:
            negative = self.rng.choice(NEGATIVE_PROMPTS.get(language, NEGATIVE_PROMPTS["en"]))
        return {
            "user_id": self.user_id,
            "text": text,
            "negative_text": negative,
            "language": language,
            "created_at": self._moment_in_visit(visit),
        }

    def _add_images(self, prompts: list[_Made]) -> list[_Made]:
        """Each image follows one prompt; files are written just before their rows' batch."""
        count = min(self.profile.images, len(prompts))
        chosen = sorted(self.rng.sample(range(len(prompts)), count))
        for done, chunk in enumerate(_chunks(chosen, BATCH_SIZE)):
            first = done * BATCH_SIZE
            rows = [self._image_row(prompts[i], first + n) for n, i in enumerate(chunk)]
            self._insert(GeneratedImage, rows)
        return self._read_back("image", GeneratedImage)

    def _image_row(self, prompt: _Made, number: int) -> dict[str, Any]:
        width, height = self.rng.choice(IMAGE_SIZES)
        data = self._images.png(width, height, label=f"demo image {self.user_id}-{number}")
        return {
            "user_id": self.user_id,
            "prompt_id": prompt.id,
            "storage_key": self._store(data, "png"),
            "content_type": "image/png",
            "byte_size": len(data),
            "model": self.rng.choice(self.profile.image_models),
            "width": width,
            "height": height,
            "settings": {
                "steps": self.rng.choice((20, 25, 30, 40, 50)),
                "seed": self.rng.randrange(2**32),
                "guidance": self.rng.choice((3.5, 5.0, 6.5, 7.0, 7.5, 9.0)),
                "style": self.rng.choice(STYLES),
                "sampler": self.rng.choice(SAMPLERS),
            },
            "created_at": prompt.created_at + timedelta(seconds=self.rng.randint(6, 45)),
        }

    def _add_uploads(self, prompts: list[_Made]) -> list[_Made]:
        rows = [self._upload_row(prompts, number) for number in range(self.profile.uploads)]
        self._insert(Upload, rows)
        return self._read_back("upload", Upload)

    def _upload_row(self, prompts: list[_Made], number: int) -> dict[str, Any]:
        names = self.profile.upload_names
        filename = names[number] if number < len(names) else f"IMG_{4100 + number * 7}.jpg"
        width, height = self.rng.choice(IMAGE_SIZES)
        data = self._images.jpeg(width, height)
        # Most references are uploaded right before the prompt that uses them.
        prompt = self.rng.choice(prompts) if prompts and self.rng.random() < 0.7 else None
        if prompt is not None:
            created_at = prompt.created_at - timedelta(seconds=self.rng.randint(20, 300))
        else:
            created_at = self.now - timedelta(minutes=self.rng.randint(60, 525_000))
        return {
            "user_id": self.user_id,
            "prompt_id": prompt.id if prompt else None,
            "storage_key": self._store(data, "jpg"),
            "original_filename": filename,
            "content_type": "image/jpeg",
            "byte_size": len(data),
            "width": width,
            "height": height,
            "created_at": created_at,
        }

    def _add_usage(self, images: list[_Made], uploads: list[_Made]) -> None:
        """One event per generation and edit, and a follow-up (upscale, variation) on some."""
        rows = []
        for image in images:
            credits = 2 if image.model == "gpt-image-2" else 1
            rows.append(self._usage_row("text_to_image", credits, image, {"model": image.model}))
            if self.rng.random() < 0.2:
                feature, cost = self.rng.choice(FOLLOW_UP_FEATURES)
                later = replace(image, created_at=image.created_at + timedelta(minutes=2))
                rows.append(self._usage_row(feature, cost, later, {"model": image.model}))
        for upload in uploads:
            rows.append(self._usage_row("image_edit", 3, upload, {}))
        self._insert(UsageEvent, sorted(rows, key=lambda row: row["created_at"]))

    def _usage_row(
        self, feature: str, credits: int, subject: _Made, details: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "feature": feature,
            "credits_used": credits,
            "details": {subject.kind + "_id": subject.id, **details},
            "created_at": subject.created_at + timedelta(seconds=1),
        }

    # -- money and support -----------------------------------------------------------------

    def _add_billing(self) -> None:
        profile = self.profile
        self._insert(
            PaymentMethod, [self._card_row(card, i) for i, card in enumerate(profile.cards)]
        )
        if profile.address is not None:
            self._insert(BillingAddress, [self._address_row(profile.address)])
        if profile.plan is not None and profile.cards:
            self._insert(Invoice, self._invoice_rows(profile.plan, profile.cards[0]))

    def _card_row(self, card: Card, position: int) -> dict[str, Any]:
        alphabet = string.ascii_letters + string.digits
        return {
            "user_id": self.user_id,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": self.now.year + card.years_valid,
            "provider": "stripe",
            # Shaped like a Stripe PaymentMethod id; only the provider could charge with it.
            "provider_token": "pm_" + "".join(self.rng.choices(alphabet, k=24)),
            "is_default": position == 0,
            "created_at": self.now - YEAR + timedelta(days=position * 97),
        }

    def _address_row(self, address: Address) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "name": self.profile.name,
            "line1": address.line1,
            "line2": address.line2,
            "city": address.city,
            "postal_code": address.postal_code,
            "region": address.region,
            "country": address.country,
            "created_at": self.now - YEAR,
        }

    def _invoice_rows(self, plan: Plan, card: Card) -> list[dict[str, Any]]:
        series = _free_invoice_series(self.profile.invoice_code)
        renewal = self._renewal_date()
        tax = round(plan.price_cents - plan.price_cents / (1 + plan.tax_rate))
        rows = []
        for months_ago in range(plan.months_billed, 0, -1):
            issued = _months_before(renewal, months_ago)
            rows.append(
                {
                    "user_id": self.user_id,
                    "number": f"INV-{series}-{issued:%Y%m}-{len(rows) + 1:03d}",
                    "description": f"{plan.label} plan, monthly ({issued:%Y-%m})",
                    "amount_cents": plan.price_cents,
                    "tax_cents": tax,
                    "currency": plan.currency,
                    "status": "paid",
                    "payment_method_label": card.label,
                    "issued_at": issued,
                }
            )
        return rows

    def _renewal_date(self) -> datetime:
        # A fixed day of the month per account, so invoices fall on the same day each month.
        day = self.now + timedelta(days=1 + self.profile.seed % 27)
        return day.replace(hour=3, minute=0, second=0)

    def _add_support(self) -> None:
        rows = []
        for ticket in self.profile.tickets:
            moment = self.now - timedelta(
                days=self.rng.randint(5, 330), hours=self.rng.randint(0, 23)
            )
            for direction, body in ticket.messages:
                rows.append(
                    {
                        "user_id": self.user_id,
                        "ticket": ticket.reference,
                        "direction": direction,
                        "subject": ticket.subject if direction == "in" else f"Re: {ticket.subject}",
                        "body": body,
                        "created_at": moment,
                    }
                )
                moment += timedelta(hours=self.rng.randint(1, 30))
        self._insert(SupportMessage, rows)

    def _add_subscription(self) -> None:
        plan = self.profile.plan
        if plan is None:
            return
        renewal = self._renewal_date()
        self._insert(
            Subscription,
            [
                {
                    "user_id": self.user_id,
                    "plan": plan.name,
                    "status": "active",
                    "credit_balance": plan.credit_balance,
                    "started_at": _months_before(renewal, plan.months_billed),
                    "renews_at": renewal,
                }
            ],
        )


# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _months_before(moment: datetime, months: int) -> datetime:
    """The same day of an earlier month (day capped at 28 so every month has it)."""
    index = moment.year * 12 + moment.month - 1 - months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=min(moment.day, 28))


def _free_invoice_series(code: str) -> str:
    """The account's invoice series, e.g. "AM"; "AM2", "AM3"... once a series is taken.

    Invoices outlive an erased account (tax law), so after the demo account has been deleted
    and is seeded again, its old numbers still exist and the new account needs fresh ones.
    """
    series, generation = code, 1
    while db.session.scalar(
        select(Invoice.id).where(Invoice.number.startswith(f"INV-{series}-")).limit(1)
    ):
        generation += 1
        series = f"{code}{generation}"
    return series


class _ImageSource:
    """Small, real image files: soft gradients with a few shapes, drawn with Pillow.

    With `unique=False` (the heavy account) a handful of templates are drawn once and each
    file is a template with its own PNG text chunk, so every file still has distinct bytes
    but thousands of them cost almost nothing to make.
    """

    TEMPLATES = 12

    def __init__(self, rng: random.Random, *, unique: bool, grain: bool = False) -> None:
        self.rng = rng
        self.unique = unique
        self.grain = grain
        self._templates: dict[tuple[int, int], list[bytes]] = {}

    def png(self, width: int, height: int, label: str) -> bytes:
        if self.unique:
            return _encode(self._draw(width, height), "PNG")
        templates = self._templates.get((width, height))
        if templates is None:
            templates = [_encode(self._draw(width, height), "PNG") for _ in range(self.TEMPLATES)]
            self._templates[(width, height)] = templates
        return _with_png_text(self.rng.choice(templates), "Comment", label)

    def jpeg(self, width: int, height: int) -> bytes:
        return _encode(self._draw(width, height), "JPEG")

    def _draw(self, width: int, height: int) -> Image.Image:
        rng = self.rng
        gradient = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270)))
        image = ImageOps.colorize(gradient, black=_colour(rng), white=_colour(rng))
        image = image.resize((width, height))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(2, 4)):
            x0, y0 = rng.randrange(width - 40), rng.randrange(height - 40)
            box = (x0, y0, x0 + rng.randint(20, width // 2), y0 + rng.randint(20, height // 2))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape(box, fill=_colour(rng))
        return _with_grain(image) if self.grain else image


def _with_grain(image: Image.Image) -> Image.Image:
    """The picture under a layer of noise: PNG cannot squeeze noise, as with real images."""
    noise = Image.merge("RGB", [Image.effect_noise(image.size, 48) for _ in range(3)])
    return ImageChops.blend(image, noise, 0.35)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=75)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _with_png_text(png: bytes, keyword: str, text: str) -> bytes:
    """Insert a tEXt chunk before IEND (always the last 12 bytes): a cheap, valid variant."""
    if not png.endswith(_PNG_END):
        raise ValueError("not a PNG ending in IEND")
    payload = keyword.encode("latin-1") + b"\x00" + text.encode("latin-1")
    body = b"tEXt" + payload
    chunk = struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))
    return png[: -len(_PNG_END)] + chunk + _PNG_END
