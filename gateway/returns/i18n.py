"""Message catalogues (gettext ``.po`` files, read with Babel) and language choice.

Catalogues live in ``gateway/locale/<lang>/LC_MESSAGES/messages.po``; they are compiled in
memory at first use, so there is no ``.mo`` file to keep in step. Update them with
``pybabel extract -F gateway/babel.cfg -o messages.pot gateway`` then
``pybabel update -i messages.pot -d gateway/locale``.
"""

from __future__ import annotations

import functools
import io
from datetime import date
from pathlib import Path

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "fr")
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
DOMAIN = "messages"


@functools.cache
def translations(lang: str) -> Translations:
    """The compiled catalogue of ``lang`` (one of :data:`LANGUAGES`).

    Raises:
        KeyError: for a language without a catalogue.
    """
    if lang not in LANGUAGES:
        raise KeyError(lang)
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def choose_language(
    asked: str | None, cookie: str | None, accept_language: str, default: str
) -> str:
    """Pick the form's language: explicit choice, then the cookie, then the browser's list."""
    for candidate in (asked, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    preferred: list[tuple[float, str]] = []
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            preferred.append((q, tag.replace("-", "_")))
    ordered = [tag for _q, tag in sorted(preferred, key=lambda p: -p[0])]
    found = negotiate_locale(ordered, list(LANGUAGES), sep="_")
    if found is None:
        found = negotiate_locale([t.split("_")[0] for t in ordered], list(LANGUAGES))
    return found or default


def money(cents: int, currency: str, lang: str) -> str:
    """Format minor units as the language writes money (``12,50 €`` / ``€12.50``)."""
    return format_currency(cents / 100, currency, locale=Locale.parse(lang))


def long_date(day: date, lang: str) -> str:
    """Format a date in full words (``12 mars 2026`` / ``March 12, 2026``)."""
    return format_date(day, format="long", locale=Locale.parse(lang))


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it (translated on display)."""
    return message


#: The seeded reason labels (``gateway.services.reasons``), so the form can show them
#: in the customer's language; a shop's own labels are shown as written.
SEEDED_REASON_LABELS = (
    N_("Defective"),
    N_("Damaged in transit"),
    N_("Damaged"),
    N_("Wrong item"),
    N_("Not as described"),
    N_("Size"),
    N_("Changed mind"),
    N_("Other"),
)
