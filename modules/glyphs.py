"""Showing KMNIST's classes as the hiragana they are, where a font allows.

matplotlib's usual fonts (DejaVu) have no Japanese glyphs, so we look for an
installed font known to be Japanese that really covers all ten characters,
and fall back to the romanised names otherwise.
"""

import functools
import os

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

from modules.data import CLASS_NAMES, HIRAGANA

# words in the names of fonts commonly installed with Japanese glyphs
_CANDIDATE_WORDS = ("cjk", "ipa", "takao", "gothic", "mincho", "hiragino", "source han",
                    "yu ", "meiryo", "noto sans jp", "noto serif jp", "droid sans fallback",
                    "unifont", "wenquanyi", "ume", "vl ")
# the captions mix romaji and hiragana, so the font needs both
_NEEDED = HIRAGANA + tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%:()")

GLYPH_HINT = ("[INFO] no installed font has the hiragana glyphs, so pictures show romaji only; "
              "to see the characters install a Japanese font (Debian/Ubuntu: "
              "`sudo apt install fonts-noto-cjk`)")


def _covers_hiragana(path):
    try:
        charmap = FT2Font(path).get_charmap()
    except Exception:  # noqa: BLE001 - an unreadable or exotic font file is not used
        return False
    return all(ord(ch) in charmap for ch in _NEEDED)


def _is_hiragana_font(name, path):
    return any(word in name.lower() + " " for word in _CANDIDATE_WORDS) and _covers_hiragana(path)


def fonts_missing_from_cache():
    """Font files installed after matplotlib cached its list of the system's
    fonts (it never looks again).  We read them in this process only:
    rewriting the cache would change every matplotlib program of the user's."""
    known = {os.path.realpath(entry.fname) for entry in font_manager.fontManager.ttflist}
    return sorted(path for path in font_manager.findSystemFonts()
                  if os.path.realpath(path) not in known)


def _find_hiragana_font():
    """The first font in matplotlib's list that has the glyphs, or None."""
    return next((font_manager.FontProperties(fname=entry.fname) for entry in sorted(
        font_manager.fontManager.ttflist, key=lambda f: f.name)
        if _is_hiragana_font(entry.name, entry.fname)), None)


def _family_name(path):
    try:
        return FT2Font(path).family_name
    except Exception:  # noqa: BLE001 - an unreadable font file is not used
        return ""


@functools.lru_cache(maxsize=1)
def hiragana_font():
    """A matplotlib FontProperties for a font with all ten glyphs (and Latin),
    among matplotlib's fonts, then those installed since it listed them; or None."""
    return _find_hiragana_font() or next(
        (font_manager.FontProperties(fname=path) for path in fonts_missing_from_cache()
         if _is_hiragana_font(_family_name(path), path)), None)


def class_labels(with_glyphs):
    """Romaji names, with the character beside them when ``with_glyphs``."""
    if with_glyphs:
        return [f"{name} {glyph}" for name, glyph in zip(CLASS_NAMES, HIRAGANA)]
    return list(CLASS_NAMES)
