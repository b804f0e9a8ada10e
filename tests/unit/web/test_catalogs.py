"""The gettext catalogs stay honest: the committed template is what the code says, and Korean translates every message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from web.i18n import LOCALE_DIR, LOCALES, choose_locale, load_catalogs

REPO = Path(__file__).resolve().parents[3]


def _ids(path: Path) -> set[str]:
    with path.open("rb") as source:
        return {
            str(m.id) if isinstance(m.id, str) else str(m.id[0]) for m in read_po(source) if m.id
        }


def test_the_committed_template_matches_the_code(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "web/babel.cfg",
         "--no-location", "--sort-output", "--omit-header", "-o", str(fresh), "web"],
        cwd=REPO, check=True,
    )  # fmt: skip
    assert _ids(fresh) == _ids(LOCALE_DIR / "messages.pot"), "run `make i18n` and translate"


def test_every_locale_has_every_message_and_korean_translates_them_all() -> None:
    expected = _ids(LOCALE_DIR / "messages.pot")
    for code in LOCALES:
        path = LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"
        assert _ids(path) == expected, f"{code}: run `make i18n`"
    with (LOCALE_DIR / "ko" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert untranslated == []


def test_catalogs_compile_in_memory() -> None:
    catalogs = load_catalogs()
    assert catalogs["ko"].gettext("Log in") == "로그인"
    assert catalogs["en"].gettext("Log in") == "Log in"


def test_language_negotiation() -> None:
    assert choose_locale(None, "ko-KR,ko;q=0.9,en-US;q=0.8", "en").code == "ko"
    assert choose_locale(None, "fr-FR, en;q=0.5", "ko").code == "en"
    assert choose_locale(None, "fr", "ko").source == "default"
    assert choose_locale(None, "ko;q=0, en", "ko").code == "en"
    assert choose_locale("en", "ko", "ko").source == "cookie"
    assert choose_locale("xx", "ko", "en").code == "ko"
