import json

import numpy as np
import pytest

from modules import glyphs, reports
from modules.data import CLASS_NAMES, HIRAGANA


def test_labels_with_and_without_glyphs():
    assert glyphs.class_labels(False)[:2] == ["o", "ki"]
    assert glyphs.class_labels(True)[:2] == ["o \u304a", "ki \u304d"]


@pytest.mark.parametrize("font", ["none", "found"])
def test_the_pictures_name_the_classes_in_romaji_and_with_a_font_in_hiragana(
        trained, tmp_path, monkeypatch, font):
    """The confusion matrix's and the prediction grid's labels, as drawn."""
    from matplotlib.figure import Figure

    if font == "found" and glyphs.hiragana_font() is None:
        pytest.skip("no CJK font installed here")
    if font == "none":
        monkeypatch.setattr(reports, "hiragana_font", lambda: None)
    figures = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig)
                        or real_savefig(fig, *a, **k))
    matrix = json.loads((trained[0] / "metrics.json").read_text())["confusion_matrix"]
    reports.save_confusion_matrix(matrix, tmp_path / "cm.png")
    labels = [f"{name} {glyph}" if font == "found" else name
              for (name, glyph) in zip(CLASS_NAMES, HIRAGANA)]
    (ax, _) = figures[0].axes  # the matrix and its colour bar
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    reports.save_prediction_grid([(np.zeros((28, 28)), f"true {labels[1]}", "red")],
                                 tmp_path / "g.png", "t")
    assert [text.get_text() for text in figures[1].axes[0].texts] == [f"true {labels[1]}"]
    assert (tmp_path / "cm.png").exists() and (tmp_path / "g.png").exists()


def test_the_hint_is_printed_exactly_when_no_font_is_found(trained):
    _, result = trained
    assert (glyphs.GLYPH_HINT in result.stdout) == (glyphs.hiragana_font() is None)


def test_a_font_without_the_characters_or_with_another_name_is_not_taken():
    from matplotlib import font_manager

    latin = font_manager.findfont("DejaVu Sans")  # matplotlib's own font: no hiragana
    assert not glyphs._is_hiragana_font(latin)
    assert not glyphs._is_hiragana_font(latin, "Noto Sans CJK JP")  # a name is not enough
    found = glyphs.hiragana_font()
    if found is None:
        pytest.skip("no CJK font installed here")
    assert glyphs._is_hiragana_font(found.get_file(), "IPAGothic")
    assert glyphs._is_hiragana_font(found.get_file())  # its own family name read from the file
    # the glyphs alone are not enough either: only fonts known to be Japanese
    assert not glyphs._is_hiragana_font(found.get_file(), "Some Symbols")


def test_a_font_installed_after_the_cache_was_written_is_found(monkeypatch, tmp_path):
    """matplotlib's font cache predates the font: found anyway, and the cache left alone."""
    import matplotlib
    from matplotlib import font_manager

    real = glyphs.hiragana_font()
    if real is None:
        pytest.skip("no CJK font installed here")
    installed = real.get_file()
    # a font manager whose list was made before the CJK font was installed
    stale = font_manager.FontManager()
    stale.ttflist = [f for f in stale.ttflist if not glyphs._is_hiragana_font(f.fname)]
    monkeypatch.setattr(font_manager, "fontManager", stale)
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path))
    glyphs.hiragana_font.cache_clear()
    try:
        found = glyphs.hiragana_font()
        assert found is not None and glyphs._is_hiragana_font(found.get_file())
        # found among the files, as matplotlib's list has no such font; that
        # list and matplotlib's cache folder are as they were
        assert found.get_file() not in {f.fname for f in stale.ttflist}
        assert installed not in {f.fname for f in stale.ttflist}
        assert list(tmp_path.iterdir()) == []
    finally:
        glyphs.hiragana_font.cache_clear()
