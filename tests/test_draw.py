"""predict.py --draw, below the page: strokes rendered and read as --image reads
a file, and drawings saved (a full disk, the cap, other programs' files)."""

import os
import re
import resource

import cv2
import numpy as np
import pytest
import torch

from conftest import strokes_of_class
from modules import canvas as canvas_module
from modules.canvas import Canvas, DrawingFolder, NotSaved, read_drawing, reference_images
from modules.classify import class_probabilities
from modules.data import CLASS_NAMES
from modules.images import load_character, to_kmnist_input

CPU = torch.device("cpu")
# how far apart the class probabilities of a drawing and of the same strokes
# in a file may be (measured here: at most 0.043 over the ten classes)
PROBABILITY_TOLERANCE = 0.15
LINE = re.compile(r"^\[INFO\] drawing: (\w+)  \[top 3: (\w+) \(.\) (\d+\.\d)%, "
                  r"(\w+) \(.\) (\d+\.\d)%, (\w+) \(.\) (\d+\.\d)%\]$")


def test_a_drawn_character_is_read_like_the_same_character_in_a_file(model, tmp_path):
    for k in range(10):
        canvas = Canvas(strokes_of_class(k))
        reading = read_drawing(model, canvas.image(), CPU)
        assert np.array_equal(reading.character, to_kmnist_input(canvas.image()))
        # the same strokes drawn on bigger paper with a pen of the same relative
        # width, saved as a file, as `predict.py --image` reads it
        size = 560
        scale = size / canvas_module.CANVAS_SIZE
        paper = np.full((size, size), 255, np.uint8)
        for stroke in canvas.strokes:
            cv2.polylines(paper, [(stroke * scale).round().astype(np.int32)], False, 0,
                          round(canvas_module.BRUSH_WIDTH * scale), cv2.LINE_AA)
        path = str(tmp_path / f"paper{k}.png")
        cv2.imwrite(path, paper)
        from_file = load_character(path)
        assert np.abs(from_file - reading.character).mean() < 0.03
        # and the model reads the two alike: the same probabilities, within a
        # tolerance (not the same top class, which flips where two classes tie)
        gap = np.abs(class_probabilities(model, from_file, CPU) - reading.probabilities).max()
        assert gap < PROBABILITY_TOLERANCE
        # each class's known strokes are read as that class
        assert LINE.match(reading.console_line()).group(1) == CLASS_NAMES[k]


def test_console_line_ranks_the_top_3_and_an_empty_canvas_is_no_reading(model):
    match = LINE.match(read_drawing(model, Canvas(strokes_of_class(4)).image(), CPU)
                       .console_line())
    ranked = [float(match.group(i)) for i in (3, 5, 7)]
    assert ranked == sorted(ranked, reverse=True) and 0 < sum(ranked) <= 100.05
    assert match.group(1) == match.group(2)
    assert read_drawing(model, Canvas().image(), CPU).empty


def test_points_are_rounded_as_the_page_rounds_them_and_kept_on_the_paper():
    canvas = Canvas([[[-50, 10.4], [10_000, 20.6]], [[3.5, 4.49]]])
    assert [stroke.tolist() for stroke in canvas.strokes] == \
        [[[0, 10], [canvas.size - 1, 21]], [[4, 4]]]  # (half to even, as NumPy rounds)
    blank = Canvas().image()
    assert blank.shape == (336, 336) and (blank == 255).all()
    dot = Canvas([[[100, 100]]]).image()  # a click leaves a round dot a brush wide
    assert dot[100, 100] == 0 and (dot < 128).sum() > 0.6 * canvas_module.BRUSH_WIDTH ** 2


def test_saving_writes_black_on_white_pngs_that_read_back_the_same(model, tmp_path):
    lines = []
    folder = DrawingFolder(str(tmp_path / "drawings"), lines.append)
    canvas = Canvas(strokes_of_class(7))
    first = folder.save(canvas)
    assert first == str(tmp_path / "drawings" / "drawing-001.png")
    assert lines == [f"[INFO] saved the drawing to {first} "
                     f"(classify it again with: python predict.py --image {first})"]
    saved = cv2.imread(first, cv2.IMREAD_UNCHANGED)
    assert saved.ndim == 2 and (saved == canvas.image()).all()
    # read back exactly as `predict.py --image` reads it: the same input
    assert np.array_equal(load_character(first),
                          read_drawing(model, canvas.image(), CPU).character)
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(first).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert folder.save(canvas).endswith("drawing-002.png")  # never overwrites
    assert sorted(os.listdir(tmp_path / "drawings")) == ["drawing-001.png", "drawing-002.png"]


def test_a_file_or_link_another_program_made_is_never_overwritten_or_followed(tmp_path):
    folder = tmp_path / "drawings"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"not ours")
    os.symlink(elsewhere, folder / "drawing-001.png")
    (folder / "notes.txt").write_text("mine")
    saved = DrawingFolder(str(folder), lambda line: None).save(Canvas(strokes_of_class(1)))
    assert saved == str(folder / "drawing-002.png")
    assert elsewhere.read_bytes() == b"not ours" and os.path.islink(folder / "drawing-001.png")


def test_a_full_disk_leaves_no_file_and_uses_no_number(tmp_path):
    """The file system refuses the write part-way (a file size limit, as a
    full disk would): no drawing-NNN.png, not even a truncated one, and the
    next save that succeeds takes the number the failed one would have."""
    folder = DrawingFolder(str(tmp_path), lambda line: None)
    canvas = Canvas(strokes_of_class(3))
    assert len(cv2.imencode(".png", canvas.image())[1]) > 2000
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, limits[1]))  # (Python ignores SIGXFSZ)
    try:
        for _ in range(2):
            with pytest.raises(NotSaved, match="could not save the drawing: File too large"):
                folder.save(canvas)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert os.listdir(tmp_path) == []
    assert folder.save(canvas) == str(tmp_path / "drawing-001.png")


def test_the_cap_is_counted_again_before_a_save_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(canvas_module, "MAX_DRAWINGS", 3)
    (tmp_path / "drawing-007.png").write_bytes(b"an earlier one")
    folder = DrawingFolder(str(tmp_path), lambda line: None)
    canvas = Canvas(strokes_of_class(2))
    assert [os.path.basename(folder.save(canvas)) for _ in range(2)] == \
        ["drawing-008.png", "drawing-009.png"]
    with pytest.raises(NotSaved, match="holds 3 drawings, as many as are kept; move some"):
        folder.save(canvas)
    os.remove(tmp_path / "drawing-008.png")  # moved away, as the message advises
    assert folder.save(canvas) == str(tmp_path / "drawing-010.png")  # no restart needed


def test_reference_strip_shows_real_images_where_the_data_set_is_here(kmnist_dir):
    from modules.data import load_kmnist

    real = reference_images(load_kmnist(str(kmnist_dir), train=False, download=False))
    assert len(real) == 10 and all(image.shape == (48, 48) for image in real)
    assert len({image.tobytes() for image in real}) == 10
    assert reference_images(None) == [None] * 10


def test_what_decided_lies_on_the_ink_and_erasing_it_hurts_more_than_chance(model, kmnist_dir):
    """The map of the pixels that pushed the top class over the runner-up is
    zero off the ink; erasing the 10% of ink it ranks highest lowers the top
    class's probability more than erasing as much ink at random; and a
    re-initialised LeNet gives other maps (Adebayo et al.'s sanity check)."""
    from scipy.stats import spearmanr

    from modules.classify import decisive_pixels
    from modules.data import load_kmnist
    from modules.lenet import LeNet

    test = load_kmnist(str(kmnist_dir), train=False, download=False)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    random_model = LeNet(1, 10).eval()
    (by_map, by_chance, correlations) = ([], [], [])
    for image in test.data.numpy()[:100].astype(np.float32) / 255:
        (pixels, top, runner_up) = decisive_pixels(model, image, CPU)
        probabilities = class_probabilities(model, image, CPU)
        assert [top, runner_up] == list(np.argsort(-probabilities)[:2])
        assert (pixels[image == 0] == 0).all()
        ink = np.flatnonzero(image.ravel() > 0.1)
        count = round(0.1 * len(ink))
        for (drops, erased) in ((by_map, ink[np.argsort(-pixels.ravel()[ink])[:count]]),
                                (by_chance, rng.choice(ink, count, replace=False))):
            changed = image.ravel().copy()
            changed[erased] = 0
            drops.append(probabilities[top] - class_probabilities(
                model, changed.reshape(28, 28), CPU)[top])
        correlations.append(spearmanr(pixels.ravel()[ink],
                                      decisive_pixels(random_model, image, CPU)[0].ravel()[ink])[0])
    assert np.mean(by_map) > 2 * np.mean(by_chance) + 0.01, (np.mean(by_map), np.mean(by_chance))
    assert np.mean(correlations) < 0.5


def test_the_decision_overlay_colours_the_strokes_only_where_they_lie(model):
    from modules.canvas import FOR_RUNNER_UP, FOR_TOP, decision_overlay
    from modules.classify import decisive_pixels

    canvas = Canvas(strokes_of_class(6))
    picture = canvas.image()
    reading = read_drawing(model, picture, CPU)
    (pixels, _, _) = decisive_pixels(model, reading.character, CPU)
    overlay = decision_overlay(picture, reading.frame, pixels)
    assert overlay.shape == (336, 336, 4) and overlay.dtype == np.uint8
    coloured = overlay[..., 3] > 0
    assert coloured.sum() > 0.5 * (picture < 128).sum()  # most of the ink says something
    assert not (coloured & (picture >= 128)).any()  # and nothing off it
    colours = {tuple(c) for c in overlay[coloured][:, :3]}
    assert colours <= {FOR_TOP, FOR_RUNNER_UP} and FOR_TOP in colours
    # the 28x28 square lies where the strokes are: its strongest pixel is on the ink
    (top, left, side) = reading.frame
    (i, j) = np.unravel_index(np.abs(pixels).argmax(), pixels.shape)
    (y, x) = (top + round((i + 0.5) * side / 28), left + round((j + 0.5) * side / 28))
    assert (picture[max(y - 8, 0):y + 8, max(x - 8, 0):x + 8] < 128).any()


def test_a_training_image_looks_most_like_itself(model, kmnist_dir):
    from modules.data import load_kmnist
    from modules.lookalikes import Lookalikes

    train = load_kmnist(str(kmnist_dir), train=True, download=False)
    lookalikes = Lookalikes(model, train.data, train.targets, CPU)
    for i in (0, 7, 1234, 1999):
        label = int(train.targets[i])
        (same, other) = lookalikes.nearest(train.data[i].numpy() / 255, [label, (label + 1) % 10])
        assert same[0] == i and len(same) == len(other) == 3
        assert all(int(train.targets[j]) == label for j in same)
        assert all(int(train.targets[j]) == (label + 1) % 10 for j in other)
