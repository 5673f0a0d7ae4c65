"""predict.py --draw: the canvas logic without a window, then the real window on Xvfb."""

import os
import re
import subprocess
import time

import cv2
import numpy as np
import pytest
import torch

from conftest import (ROOT, headless_env, needs_virtual_display, run_script, started,
                      virtual_display, wait_for_window)
from kmnist_files import class_strokes
from modules import canvas as canvas_module
from modules.canvas import (Canvas, DrawingFolder, DrawingSession, compose, read_drawing,
                            reference_images)
from modules.checkpoint import build_model, load_checkpoint
from modules.classify import class_probabilities
from modules.data import CLASS_NAMES
from modules.display import DRAW_WINDOW
from modules.images import load_character, to_kmnist_input

CPU = torch.device("cpu")
# how far apart the class probabilities of a drawing and of the same strokes
# in a file may be (measured here: at most 0.043 over the ten classes)
PROBABILITY_TOLERANCE = 0.15
LINE = re.compile(r"^\[INFO\] drawing: (\w+)  \[top 3: (\w+) \(.\) (\d+\.\d)%, "
                  r"(\w+) \(.\) (\d+\.\d)%, (\w+) \(.\) (\d+\.\d)%\]$")


@pytest.fixture(scope="module")
def model(trained):
    out, _ = trained
    return build_model(load_checkpoint(out / "model.pth"), out / "model.pth")


def session_for(model, tmp_path, lines):
    return DrawingSession(model, CPU, reference_images(), None,
                          DrawingFolder(str(tmp_path / "drawings"), lines.append), log=lines.append)


def draw_class(session, k):
    """Draw class ``k``'s three strokes with the mouse, in window coordinates:
    press, drag through several points, release, as a person would."""
    (left, top) = (canvas_module.MARGIN, canvas_module.CANVAS_TOP)
    scale = canvas_module.CANVAS_SIZE / 28
    for (r0, c0, r1, c1) in class_strokes(0)[k]:
        points = [(c0 + (c1 - c0) * t, r0 + (r1 - r0) * t) for t in np.linspace(0, 1, 8)]
        session.press(left + points[0][0] * scale, top + points[0][1] * scale)
        for (x, y) in points[1:]:
            session.drag(left + x * scale, top + y * scale)
        session.release()


def test_a_drawn_character_is_read_like_the_same_character_in_a_file(model, tmp_path):
    for k in range(10):
        lines = []
        session = session_for(model, tmp_path, lines)
        draw_class(session, k)
        assert len(lines) == 3  # one line per finished stroke
        drawn = session.reading.character
        assert np.array_equal(drawn, to_kmnist_input(session.canvas.image()))
        # the same strokes drawn on bigger paper with a pen of the same relative
        # width, saved as a file, as `predict.py --image` reads it
        size = 560
        scale = size / canvas_module.CANVAS_SIZE
        paper = np.full((size, size), 255, np.uint8)
        for stroke in session.canvas.strokes:
            points = (np.array(stroke) * scale).round().astype(np.int32)
            cv2.polylines(paper, [points], False, 0, round(canvas_module.BRUSH_WIDTH * scale),
                          cv2.LINE_AA)
        path = str(tmp_path / f"paper{k}.png")
        cv2.imwrite(path, paper)
        from_file = load_character(path)
        assert np.abs(from_file - drawn).mean() < 0.03
        # and the model reads the two alike: the same probabilities, within a
        # tolerance (not the same top class, which flips where two classes tie)
        gap = np.abs(class_probabilities(model, from_file, CPU)
                     - session.reading.probabilities).max()
        assert gap < PROBABILITY_TOLERANCE
        assert LINE.match(lines[-1]).group(1) == CLASS_NAMES[drawn_class(session)]


def drawn_class(session):
    return int(session.reading.probabilities.argmax())


def test_console_line_is_the_image_format_and_probabilities_add_up(model, tmp_path):
    lines = []
    session = session_for(model, tmp_path, lines)
    draw_class(session, 4)
    match = LINE.match(lines[-1])
    assert match, lines[-1]
    ranked = [float(match.group(i)) for i in (3, 5, 7)]
    assert ranked == sorted(ranked, reverse=True) and 0 < sum(ranked) <= 100.05
    assert match.group(1) == match.group(2)


def test_undo_and_clear(model, tmp_path):
    lines = []
    session = session_for(model, tmp_path, lines)
    blank = session.canvas.image()
    assert (blank == 255).all() and not session.canvas.strokes
    draw_class(session, 2)
    full = session.canvas.image()
    assert len(session.canvas.strokes) == 3 and (full < 128).sum() > 500
    session.key("z")
    assert len(session.canvas.strokes) == 2 and len(lines) == 4  # undo re-reads and reports
    session.key("z")
    session.key("z")
    assert not session.canvas.strokes and (session.canvas.image() == blank).all()
    assert session.reading.empty and len(lines) == 5  # an empty canvas prints nothing
    assert session.key("z")  # nothing left to undo: no error, no line
    draw_class(session, 2)
    assert (session.canvas.image() == full).all()  # the same strokes give the same picture
    n = len(lines)
    session.key("c")
    assert not session.canvas.strokes and session.reading.empty and len(lines) == n


def test_saving_writes_black_on_white_pngs_that_read_back_the_same(model, tmp_path):
    lines = []
    session = session_for(model, tmp_path, lines)
    assert session.save() is None and lines[-1] == "[INFO] nothing to save: the canvas is empty"
    draw_class(session, 7)
    session.key("s")
    first = str(tmp_path / "drawings" / "drawing-001.png")
    assert lines[-1].startswith(f"[INFO] saved the drawing to {first}")
    saved = cv2.imread(first, cv2.IMREAD_UNCHANGED)
    assert saved.ndim == 2 and (saved == session.canvas.image()).all()
    assert saved[0, 0] == 255 and saved.min() == 0  # white paper, black ink
    # read back exactly as `predict.py --image` reads it: the same input, the same answer
    assert np.array_equal(load_character(first), session.reading.character)
    assert session.save().endswith("drawing-002.png")  # never overwrites


def test_composed_picture_has_its_parts(model, tmp_path):
    lines = []
    session = session_for(model, tmp_path, lines)
    empty = session.picture()
    assert empty.shape == (canvas_module.HEIGHT, canvas_module.WIDTH, 3)
    assert empty.dtype == np.uint8
    (left, top) = (canvas_module.MARGIN, canvas_module.CANVAS_TOP)
    size = canvas_module.CANVAS_SIZE
    assert (empty[top:top + size, left:left + size] == 255).all()  # blank paper
    (inset_top, inset_left, inset) = (canvas_module.INSET_TOP, canvas_module.SIDE_LEFT,
                                      canvas_module.INSET)
    assert empty[inset_top:inset_top + inset, inset_left:inset_left + inset].max() <= 40

    draw_class(session, 1)
    picture = session.picture()
    paper = picture[top:top + size, left:left + size, 0]
    assert (paper == session.canvas.image()).all()
    # the 28x28 input, enlarged pixel for pixel
    shown = picture[inset_top:inset_top + inset, inset_left:inset_left + inset, 0]
    assert (shown[::inset // 28, ::inset // 28] == (session.reading.character * 255)
            .astype(np.uint8)).all()
    # conv1's 20 maps of this drawing, below it
    maps = canvas_module.feature_map_grid(session.reading.maps)
    assert maps.shape[:2] == (2 * canvas_module.MAP_SIZE + 4, 10 * canvas_module.MAP_SIZE + 36)
    top_of_maps = canvas_module.MAPS_TOP
    assert (picture[top_of_maps:top_of_maps + maps.shape[0],
                    inset_left:inset_left + maps.shape[1]] == maps).all()
    assert maps.std() > 10  # not a blank panel
    # the border sets the paper off from the dark panels around it
    assert tuple(picture[top - 2, left + 10]) == canvas_module.PAPER_BORDER
    assert tuple(picture[5, 5]) == canvas_module.BACKGROUND


def test_reference_strip_prefers_real_images_then_glyphs(kmnist_dir):
    from modules.data import load_kmnist

    real = reference_images(load_kmnist(str(kmnist_dir), train=False, download=False))
    assert len(real) == 10 and all(image.shape == (48, 48) for image in real)
    masks = [np.full((60, 60), k * 20, np.uint8) for k in range(10)]
    printed = reference_images(None, masks)
    assert [int(image[0, 0]) for image in printed] == [k * 20 for k in range(10)]
    assert reference_images(None, None) == [None] * 10
    picture = compose(Canvas().image(), read_drawing(None, Canvas().image(), CPU),
                      reference_images(None, None))
    assert picture.shape == (canvas_module.HEIGHT, canvas_module.WIDTH, 3)


def test_live_reading_is_throttled(model, tmp_path):
    now = [0.0]
    session = DrawingSession(model, CPU, reference_images(), None, DrawingFolder(str(tmp_path)),
                             log=lambda line: None, clock=lambda: now[0])
    (left, top) = (canvas_module.MARGIN, canvas_module.CANVAS_TOP)
    session.press(left + 50, top + 50)
    session.drag(left + 200, top + 200)
    assert session.update()  # the first read of a stroke happens at once
    first = session.reading.probabilities.copy()
    session.drag(left + 250, top + 60)
    session.update()
    assert np.array_equal(session.reading.probabilities, first)  # too soon to read again
    now[0] += canvas_module.LIVE_INTERVAL
    session.update()
    assert not np.array_equal(session.reading.probabilities, first)


def test_strokes_start_only_on_the_paper(model, tmp_path):
    session = session_for(model, tmp_path, [])
    session.press(5, 5)  # on the title bar
    session.drag(200, 200)
    session.release()
    assert not session.canvas.strokes
    canvas = Canvas([[(-50, 10), (10_000, 20)]])  # points off the paper end at its edge
    assert canvas.strokes[0].tolist() == [[0, 10], [canvas.size - 1, 20]]


def test_draw_without_a_display_says_why_and_exits_1(trained, tmp_path):
    out, _ = trained
    result = run_script("predict.py", "--draw", "-m", out / "model.pth", "-o",
                        tmp_path / "p.png", env=headless_env())
    assert result.returncode == 1
    assert "[ERROR] --draw needs a window" in result.stderr
    assert "neither DISPLAY nor WAYLAND_DISPLAY" in result.stderr
    assert "`python predict.py --draw --browser`" in result.stderr  # the way that works here
    assert "--image" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("extra", [["--image", "x.png"], ["--num", "3"], ["--no-display"]])
def test_draw_with_options_that_contradict_it_is_a_usage_error(extra):
    result = run_script("predict.py", "--draw", *extra)
    assert result.returncode == 2
    assert f"--draw cannot be combined with {extra[0]}" in result.stderr


def _xdotool(env, *args):
    return subprocess.run(["xdotool", *map(str, args)], env=env, check=True,
                          capture_output=True, text=True).stdout


@needs_virtual_display
def test_drawing_in_the_window_on_a_virtual_display(trained, kmnist_dir, tmp_path):
    out, _ = trained
    with virtual_display(500 + os.getpid() % 400) as env:
        with started([os.path.join(ROOT, "predict.py"), "--draw", "-m", out / "model.pth",
                      "--data-dir", kmnist_dir, "-o", tmp_path / "predictions.png"],
                     env) as predict:
            window = wait_for_window(predict, DRAW_WINDOW, env)
            time.sleep(1.0)  # let the window map and draw its first picture
            (left, top) = (canvas_module.MARGIN, canvas_module.CANVAS_TOP)
            # one stroke: press, several moves, release (a diagonal across the paper)
            _xdotool(env, "mousemove", "--window", window, left + 60, top + 60)
            _xdotool(env, "mousedown", 1)
            for step in range(1, 9):
                _xdotool(env, "mousemove", "--window", window, left + 60 + 25 * step,
                         top + 60 + 22 * step)
                time.sleep(0.05)
            _xdotool(env, "mouseup", 1)
            time.sleep(0.8)
            for key in ("s", "q"):
                _xdotool(env, "key", "--window", window, key)
                time.sleep(0.8)
            stdout, stderr = predict.communicate(timeout=30)
    assert predict.returncode == 0, stderr
    drawn = [line for line in stdout.splitlines() if line.startswith("[INFO] drawing: ")]
    assert len(drawn) == 1 and LINE.match(drawn[0]), stdout
    saved = tmp_path / "drawings" / "drawing-001.png"
    assert f"[INFO] saved the drawing to {saved}" in stdout
    image = cv2.imread(str(saved), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (canvas_module.CANVAS_SIZE,) * 2 and (image < 128).sum() > 1000
    assert "Traceback" not in stderr
