"""Showing KMNIST's classes as the hiragana they are, where a font allows.

matplotlib draws text with the fonts it knows about; the usual ones (DejaVu)
have no Japanese glyphs, so we look for an installed CJK font that really
covers all ten characters, and fall back to the romanised names otherwise.
"""

import functools
import os

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from modules.data import CLASS_NAMES, HIRAGANA

# fonts commonly installed with Japanese glyphs (Linux, macOS, Windows)
_CANDIDATE_WORDS = ("cjk", "ipa", "takao", "gothic", "mincho", "hiragino", "source han",
                    "yu ", "meiryo", "noto sans jp", "noto serif jp", "droid sans fallback",
                    "unifont", "wenquanyi", "ume", "vl ")

_LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%:()"

GLYPH_HINT = ("[INFO] no installed font has the hiragana glyphs, so pictures show romaji only; "
              "to see the characters install a Japanese font (Debian/Ubuntu: "
              "`sudo apt install fonts-noto-cjk`)")


def _covers_hiragana(path):
    try:
        from matplotlib.ft2font import FT2Font
        charmap = FT2Font(path).get_charmap()
    except Exception:  # unreadable or exotic font file: not usable
        return False
    # the captions mix romaji and hiragana, so the font needs both
    return all(ord(ch) in charmap for ch in HIRAGANA + tuple(_LATIN))


def _find_hiragana_font():
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: f.name):
        name = entry.name.lower() + " "
        if any(word in name for word in _CANDIDATE_WORDS) and _covers_hiragana(entry.fname):
            return font_manager.FontProperties(fname=entry.fname)
    return None


def add_fonts_missing_from_cache():
    """Add fonts installed after matplotlib wrote its font cache; returns how many.

    matplotlib lists the system's fonts once and keeps that list in a cache
    file, so a font installed later (``apt install fonts-noto-cjk``) stays
    invisible to it.  We add the missing ones and rewrite the cache, once:
    later runs then find them at no cost.
    """
    known = {os.path.realpath(entry.fname) for entry in font_manager.fontManager.ttflist}
    added = 0
    for path in font_manager.findSystemFonts():
        if os.path.realpath(path) in known:
            continue
        try:
            font_manager.fontManager.addfont(path)
            added += 1
        except Exception:  # noqa: BLE001 - an unreadable font file is simply not used
            continue
    if added:
        cache = os.path.join(matplotlib.get_cachedir(),
                             f"fontlist-v{font_manager.FontManager.__version__}.json")
        try:
            font_manager.json_dump(font_manager.fontManager, cache)
        except OSError:  # a read-only cache folder: found again next time, no harm
            pass
    return added


@functools.lru_cache(maxsize=1)
def hiragana_font():
    """A matplotlib FontProperties for a font with all ten glyphs (and Latin), or None."""
    font = _find_hiragana_font()
    if font is None and add_fonts_missing_from_cache():
        font = _find_hiragana_font()
    return font


def glyph_images(size):
    """The ten hiragana as ``size`` x ``size`` uint8 masks (255 = ink), or None
    without a font that has them.  OpenCV's putText cannot draw hiragana, so
    the --draw window pastes these in."""
    font = hiragana_font()
    if font is None:
        return None
    masks = []
    for glyph in HIRAGANA:
        fig = Figure(figsize=(size / 100, size / 100), dpi=100, facecolor="black")
        # points are 1/72 inch: 0.72 * size points fill the square; leave a margin
        fig.text(0.5, 0.5, glyph, fontproperties=font, fontsize=0.72 * size * 0.85,
                 color="white", ha="center", va="center")
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        masks.append(np.asarray(canvas.buffer_rgba())[:, :, 0].copy())
    return masks


def class_labels(with_glyphs):
    """Romaji names, with the character beside them when ``with_glyphs``."""
    if with_glyphs:
        return [f"{name} {glyph}" for name, glyph in zip(CLASS_NAMES, HIRAGANA)]
    return list(CLASS_NAMES)
