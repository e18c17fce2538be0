"""The message catalogues cover every text of the form, in English and French."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from gateway.returns.i18n import LANGUAGES, LOCALE_DIR, choose_language, long_date, money

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _extracted() -> set[str | tuple[str, ...]]:
    with (ROOT / "gateway" / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options = parse_mapping_cfg(fh)
    assert ("gateway/services/labels.py", "python") in method_map
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(str(ROOT), method_map, options):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_every_text_is_in_both_catalogues_with_the_same_placeholders() -> None:
    wanted = _extracted()
    assert len(wanted) > 50
    for lang in LANGUAGES:
        with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalog = read_po(fh)
        ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}
        assert wanted <= ids, f"{lang}: missing {wanted - ids}"
        for m in catalog:
            if not m.id or lang == "en":
                continue
            msgid = m.id if isinstance(m.id, str) else m.id[0]
            strings = [m.string] if isinstance(m.string, str) else list(m.string)
            assert all(strings), f"fr: untranslated {msgid!r}"
            for s in strings:
                assert sorted(PLACEHOLDER.findall(s)) == sorted(PLACEHOLDER.findall(msgid))


def test_language_choice_and_formats() -> None:
    assert choose_language(None, None, "fr-FR,fr;q=0.9,en;q=0.8", "en") == "fr"
    assert choose_language(None, None, "de;q=1,en-GB;q=0.5,fr;q=0.7", "en") == "fr"
    assert choose_language(None, "fr", "en", "en") == "fr"
    assert choose_language("en", "fr", "fr", "fr") == "en"
    assert choose_language("xx", None, "es", "fr") == "fr"
    assert money(16915, "EUR", "fr") == "169,15\u00a0€"
    assert money(16915, "EUR", "en") == "€169.15"
    from datetime import date

    assert long_date(date(2026, 10, 30), "fr") == "30 octobre 2026"
    assert long_date(date(2026, 10, 30), "en") == "October 30, 2026"
