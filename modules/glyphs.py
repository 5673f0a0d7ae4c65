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


def _is_hiragana_font(path, name=None):
    """True for a font known to be Japanese by its family ``name`` (read from
    the file where not given) that covers the ten characters and Latin."""
    try:
        font = None if name else FT2Font(path)  # (opened once, and only where needed)
        if not any(word in (name or font.family_name).lower() + " " for word in _CANDIDATE_WORDS):
            return False
        charmap = (font or FT2Font(path)).get_charmap()
    except Exception:  # noqa: BLE001 - an unreadable or exotic font file is not used
        return False
    return all(ord(ch) in charmap for ch in _NEEDED)


def _fonts():
    """(path, family name or None) of matplotlib's fonts, then of those
    installed after it listed them (it never looks again; we read them in this
    process only: rewriting its cache would change every matplotlib program)."""
    listed = sorted(font_manager.fontManager.ttflist, key=lambda entry: entry.name)
    yield from ((entry.fname, entry.name) for entry in listed)
    known = {os.path.realpath(entry.fname) for entry in listed}
    yield from ((path, None) for path in sorted(font_manager.findSystemFonts())
                if os.path.realpath(path) not in known)


@functools.lru_cache(maxsize=1)
def hiragana_font():
    """A matplotlib FontProperties for the first font with all ten glyphs (and
    Latin), or None."""
    return next((font_manager.FontProperties(fname=path) for (path, name) in _fonts()
                 if _is_hiragana_font(path, name)), None)


def class_labels(with_glyphs):
    """Romaji names, with the character beside them when ``with_glyphs``."""
    if with_glyphs:
        return [f"{name} {glyph}" for name, glyph in zip(CLASS_NAMES, HIRAGANA)]
    return list(CLASS_NAMES)
