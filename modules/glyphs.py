"""Showing KMNIST's classes as the hiragana they are, where a font allows.

matplotlib draws text with the fonts it knows about; the usual ones (DejaVu)
have no Japanese glyphs, so we look for an installed CJK font that really
covers all ten characters, and fall back to the romanised names otherwise.
"""

import functools

from matplotlib import font_manager

from modules.data import CLASS_NAMES, HIRAGANA

# fonts commonly installed with Japanese glyphs (Linux, macOS, Windows)
_CANDIDATE_WORDS = ("cjk", "ipa", "takao", "gothic", "mincho", "hiragino", "source han",
                    "yu ", "meiryo", "noto sans jp", "noto serif jp", "droid sans fallback",
                    "unifont", "wenquanyi", "ume", "vl ")

_LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%:()"

GLYPH_HINT = ("[INFO] no installed font has the hiragana glyphs, so pictures show romaji only; "
              "to see the characters install a Japanese font (Debian/Ubuntu: "
              "`sudo apt install fonts-noto-cjk`) and clear matplotlib's cache "
              "(`rm -rf ~/.cache/matplotlib`)")


def _covers_hiragana(path):
    try:
        from matplotlib.ft2font import FT2Font
        charmap = FT2Font(path).get_charmap()
    except Exception:  # unreadable or exotic font file: not usable
        return False
    # the captions mix romaji and hiragana, so the font needs both
    return all(ord(ch) in charmap for ch in HIRAGANA + tuple(_LATIN))


@functools.lru_cache(maxsize=1)
def hiragana_font():
    """A matplotlib FontProperties for a font with all ten glyphs (and Latin), or None."""
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: f.name):
        name = entry.name.lower() + " "
        if any(word in name for word in _CANDIDATE_WORDS) and _covers_hiragana(entry.fname):
            return font_manager.FontProperties(fname=entry.fname)
    return None


def class_labels(with_glyphs):
    """Romaji names, with the character beside them when ``with_glyphs``."""
    if with_glyphs:
        return [f"{name} {glyph}" for name, glyph in zip(CLASS_NAMES, HIRAGANA)]
    return list(CLASS_NAMES)
