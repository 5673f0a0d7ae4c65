import json

import pytest

from modules import glyphs, plots


def test_labels_with_and_without_glyphs():
    assert glyphs.class_labels(False)[:2] == ["o", "ki"]
    assert glyphs.class_labels(True)[:2] == ["o \u304a", "ki \u304d"]


def test_font_fallback_draws_romaji_and_says_how_to_get_glyphs(trained, kmnist_dir, tmp_path,
                                                               monkeypatch):
    # no font: the pictures are still written, with romaji only
    monkeypatch.setattr(glyphs, "hiragana_font", lambda: None)
    monkeypatch.setattr(plots, "hiragana_font", lambda: None)
    out, _ = trained
    matrix = json.loads((out / "metrics.json").read_text())["confusion_matrix"]
    plots.save_confusion_matrix(matrix, tmp_path / "cm.png")
    plots.save_prediction_grid([(plots.np.zeros((28, 28)), "ki", "red")], tmp_path / "g.png", "t")
    assert (tmp_path / "cm.png").stat().st_size > 10_000
    assert (tmp_path / "g.png").stat().st_size > 1_000
    assert "fonts-noto-cjk" in glyphs.GLYPH_HINT


def test_the_hint_is_printed_exactly_when_no_font_is_found(trained):
    _, result = trained
    assert (glyphs.GLYPH_HINT in result.stdout) == (glyphs.hiragana_font() is None)


def test_a_found_font_really_has_all_ten_characters():
    font = glyphs.hiragana_font()
    if font is None:
        pytest.skip("no CJK font installed here")
    assert glyphs._covers_hiragana(font.get_file())
