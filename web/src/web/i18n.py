"""Internationalization: gettext catalogs (Babel) compiled in memory at startup, and the visitor's language from a cookie or Accept-Language."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
#: The languages the pages are written in; the order is the switch's order.
LOCALES: tuple[str, ...] = ("ko", "en")
#: The cookie the language switch sets (a preference, not a secret: readable by scripts).
LANG_COOKIE = "lang"
#: A preference is kept a year.
LANG_COOKIE_SECONDS = 365 * 24 * 3600


def N_(message: str) -> str:  # noqa: N802 (the gettext convention's name, which pybabel extracts)
    """Mark ``message`` for the catalog without translating it here (it is translated where it
    is shown, in the visitor's language): ``make i18n`` extracts every ``N_("...")``."""
    return message


def load_catalogs(directory: Path = LOCALE_DIR) -> dict[str, Translations]:
    """Read ``<directory>/<locale>/LC_MESSAGES/messages.po`` for every locale in ``LOCALES`` and
    compile it in memory.

    No ``.mo`` file is committed or built: the ``.po`` is the one source, so ``make run``, the
    tests, the image and a read-only root filesystem all use the same path (about 10 ms per
    language). Fuzzy entries are left out, as ``msgfmt`` would. Raises ``FileNotFoundError``
    when a catalog is missing: a build without its translations must not start."""
    catalogs: dict[str, Translations] = {}
    for code in LOCALES:
        path = directory / code / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as source:
            catalog = read_po(source, locale=code)
        compiled = BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        catalogs[code] = Translations(fp=compiled)
    return catalogs


@dataclass(frozen=True)
class LocaleChoice:
    """The language a response is rendered in, and where the choice came from."""

    code: str
    #: "cookie" (the visitor's switch), "header" (Accept-Language) or "default".
    source: str

    @property
    def display_name(self) -> str:
        return str(Locale.parse(self.code).get_display_name(self.code))


def choose_locale(cookie: str | None, accept_language: str | None, default: str) -> LocaleChoice:
    """The visitor's switch wins, then Accept-Language (RFC 9110 §12.5.4, quality values
    honoured, ``ko-KR`` matches ``ko``), then ``default``. Unknown values are ignored."""
    if cookie in LOCALES:
        return LocaleChoice(cookie, "cookie")
    preferred = _accept_language(accept_language or "")
    if preferred:
        chosen = negotiate_locale(preferred, list(LOCALES), sep="-")
        if chosen is not None:
            return LocaleChoice(chosen, "header")
        # a region we do not know ("en-GB") still matches its language
        chosen = negotiate_locale([tag.split("-")[0] for tag in preferred], list(LOCALES), sep="-")
        if chosen is not None:
            return LocaleChoice(chosen, "header")
    return LocaleChoice(default, "default")


def _accept_language(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first; ``q=0`` tags are dropped."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]
