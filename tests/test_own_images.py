import os
import re

import cv2
import numpy as np
import pytest

from kmnist_files import class_patterns
from modules.images import ImageProblem, expand_image_paths, load_character, to_kmnist_input


def glyph_canvas(size=300):
    """A character-like shape (white on black) filling most of a square canvas."""
    canvas = np.zeros((size, size), np.uint8)
    s = size / 300
    cv2.line(canvas, (int(60 * s), int(80 * s)), (int(240 * s), int(80 * s)), 255, int(22 * s))
    cv2.line(canvas, (int(150 * s), int(40 * s)), (int(120 * s), int(260 * s)), 255, int(22 * s))
    cv2.ellipse(canvas, (int(170 * s), int(190 * s)), (int(60 * s), int(45 * s)), 0, 0, 300,
                255, int(20 * s))
    return canvas


def test_paper_scan_and_kmnist_style_image_give_the_same_input():
    canvas = glyph_canvas()
    black_on_white = 255 - canvas  # as drawn on paper, 300x300
    white_on_black = cv2.resize(canvas, (28, 28), interpolation=cv2.INTER_AREA)
    a, b = to_kmnist_input(black_on_white), to_kmnist_input(white_on_black)
    assert a.shape == b.shape == (28, 28) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and a.max() > 0.9
    assert np.abs(a - b).mean() < 0.05
    # the background ends up black and the ink white, like KMNIST
    assert a[0].mean() < 0.05 and a.mean() < 0.5


def test_ink_is_cropped_and_centred_whatever_the_margins():
    canvas = np.zeros((400, 600), np.uint8)
    canvas[300:380, 20:100] = glyph_canvas(80)  # small, off-centre, wide canvas
    a = to_kmnist_input(255 - canvas)
    b = to_kmnist_input(glyph_canvas(80))
    assert np.abs(a - b).mean() < 0.05
    rows, cols = np.nonzero(a > 0.5)
    assert rows.min() <= 3 and rows.max() >= 24 and cols.min() <= 3 and cols.max() >= 24


def test_low_contrast_grey_photo_is_stretched():
    canvas = glyph_canvas()
    photo = (150 - canvas.astype(np.int32) * 90 // 255).astype(np.uint8)  # grey ink, grey paper
    a, b = to_kmnist_input(photo), to_kmnist_input(canvas)
    assert np.abs(a - b).mean() < 0.05


@pytest.mark.parametrize("value", [0, 255, 128])
def test_blank_image_is_refused(value):
    with pytest.raises(ImageProblem, match="blank"):
        to_kmnist_input(np.full((50, 80), value, np.uint8))


def test_specks_of_noise_do_not_move_the_crop():
    canvas = glyph_canvas()
    photo = 255 - canvas
    photo[5, 5] = photo[290, 12] = 0  # two black specks near the corners
    assert np.abs(to_kmnist_input(photo) - to_kmnist_input(255 - canvas)).mean() < 0.02


def test_noisy_blank_paper_is_refused():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(230, 3, (200, 200)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageProblem, match="blank"):
        to_kmnist_input(paper)


def test_transparent_png_is_laid_on_white(tmp_path):
    canvas = glyph_canvas()
    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[..., 3] = canvas  # black ink only where alpha is set, transparent elsewhere
    cv2.imwrite(str(tmp_path / "t.png"), rgba)
    assert np.abs(load_character(str(tmp_path / "t.png")) - to_kmnist_input(canvas)).mean() < 0.05


def test_folders_expand_to_their_images(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (paths, empty) = expand_image_paths([str(tmp_path), str(tmp_path / "empty")])
    assert [os.path.basename(p) for p in paths] == ["a.jpg", "b.png"]
    assert empty == [str(tmp_path / "empty")]  # reported apart, not counted as a file


def test_predict_on_image_files_reports_each_and_fails_for_the_bad_ones(trained, tmp_path, run):
    out, _ = trained
    patterns = class_patterns(0)
    folder = tmp_path / "mine"
    folder.mkdir()
    # one character drawn black on white paper at 280x280, and white on black at 28x28
    # as KMNIST stores it (that both become the same input is tested above)
    paper = 255 - cv2.resize((patterns[3] * 255).astype(np.uint8), (280, 280),
                             interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(folder / "scan.png"), paper)
    cv2.imwrite(str(folder / "small.png"), (patterns[3] * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "blank.png"), np.full((100, 100), 255, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")
    grid = tmp_path / "grid.png"
    result = run("predict.py", "-m", out / "model.pth", "--image", folder,
                 tmp_path / "missing.png", "-o", grid)
    assert result.returncode == 1
    lines = {line.split(": ")[0]: line for line in result.stdout.splitlines()
             if line.startswith(str(folder))}
    assert sorted(lines) == [str(folder / "scan.png"), str(folder / "small.png")]
    for line in lines.values():
        top = line.split(": ")[1].split()[0]
        assert top in ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), line
        ranked = [float(p) for p in re.findall(r"(\d+\.\d)%", line)]
        assert len(ranked) == 3 and ranked == sorted(ranked, reverse=True)
        assert 0 < sum(ranked) <= 100.05
    err = result.stderr
    assert "blank.png: the image is blank" in err
    assert "broken.jpg: not an image file that Pillow can read" in err
    assert "missing.png: cannot be read (No such file or directory)" in err
    assert "3 of 5 files could not be classified" in err and "Traceback" not in err
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_pipe_an_empty_file_and_an_empty_folder_are_each_reported(trained, tmp_path, run):
    out, _ = trained
    cv2.imwrite(str(tmp_path / "good.png"), 255 - glyph_canvas())
    os.mkfifo(tmp_path / "pipe.png")  # reading it would wait for a writer forever
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "nothing").mkdir()
    result = run("predict.py", "-m", out / "model.pth", "--no-display", "--image",
                 tmp_path / "pipe.png", tmp_path / "empty.png", tmp_path / "nothing",
                 tmp_path / "good.png", "-o", tmp_path / "g.png")
    assert result.returncode == 1
    assert result.stdout.count("good.png: ") == 1
    assert result.stderr.splitlines() == [
        f"[ERROR] {tmp_path / 'nothing'}: the folder holds no image files (.png, .jpg, .jpeg, "
        ".bmp, .tif, .tiff, .webp, .pbm, .pgm, .ppm)",
        f"[ERROR] {tmp_path / 'pipe.png'}: this is not a regular file, so not an image file",
        f"[ERROR] {tmp_path / 'empty.png'}: the file is empty",
        "[ERROR] 2 of 3 files could not be classified"]


def test_an_empty_folder_alone_is_not_counted_as_a_file(trained, tmp_path, run):
    out, _ = trained
    result = run("predict.py", "-m", out / "model.pth", "--no-display", "--image",
                 tmp_path, "-o", tmp_path / "g.png")
    assert result.returncode == 1
    assert result.stderr == (f"[ERROR] {tmp_path}: the folder holds no image files (.png, .jpg, "
                             ".jpeg, .bmp, .tif, .tiff, .webp, .pbm, .pgm, .ppm)\n")


def test_own_images_need_no_data_set(trained, tmp_path, run):
    out, _ = trained
    cv2.imwrite(str(tmp_path / "a.png"), 255 - glyph_canvas())
    result = run("predict.py", "-m", out / "model.pth", "--image", tmp_path / "a.png",
                 "--data-dir", tmp_path / "no-data-here", "--no-download", "--no-display",
                 "-o", tmp_path / "g.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("a.png: ") == 1


def write_page_png(path, width, height, square):
    """A white grayscale page of ``width`` x ``height`` pixels with one black
    square (top, left, side), written row by row so that even a 400-megapixel
    page takes a few MB of memory to make (and the file under 2 MB)."""
    import struct
    import zlib

    (top, left, side) = square
    white = b"\0" + b"\xff" * width
    inked = b"\0" + b"\xff" * left + b"\0" * side + b"\xff" * (width - left - side)
    compressor = zlib.compressobj(1)
    data = b"".join(compressor.compress(inked if top <= row < top + side else white)
                    for row in range(height)) + compressor.flush()

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
                + chunk(b"IEND", b""))


def peak_memory_of_loading(path):
    """Peak resident memory (MB) of a fresh process that loads ``path``, and its outcome.

    Read from /proc (VmHWM: this process's own peak; getrusage's ru_maxrss
    would include the peak of the test process it was forked from)."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from modules.images import ImageProblem, load_character\n"
            "try:\n    print(load_character(sys.argv[2]).shape)\n"
            "except ImageProblem as problem:\n    print(problem)\n"
            "try:\n    print(next(int(line.split()[1]) // 1024 for line in\n"
            "               open('/proc/self/status') if line.startswith('VmHWM:')))\n"
            "except OSError:\n    print(0)  # no /proc (not Linux): not measured\n")
    result = subprocess.run([sys.executable, "-c", code, ROOT, str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (outcome, megabytes) = result.stdout.strip().splitlines()
    return outcome, int(megabytes)


def test_a_huge_page_is_refused_from_its_header_and_the_others_still_classified(trained,
                                                                                  tmp_path, run):
    out, _ = trained
    huge = tmp_path / "scan.png"
    write_page_png(huge, 20000, 20000, (6000, 6000, 4000))  # 400 megapixels, 1.8 MB
    outcome, megabytes = peak_memory_of_loading(huge)
    # (past twice Pillow's own limit, 179 megapixels, it refuses to give the size)
    assert outcome == ("the image is more than 179 megapixels; the limit is 100 megapixels: "
                       "shrink it first (a character needs a few hundred pixels)")
    assert megabytes < 1024  # it used to take 7.4 GB: the pixels are never decoded
    cv2.imwrite(str(tmp_path / "ok.png"), 255 - glyph_canvas())
    result = run("predict.py", "-m", out / "model.pth", "--image", huge,
                 tmp_path / "ok.png", "--no-display", "-o", tmp_path / "g.png")
    assert result.returncode == 1
    assert f"[ERROR] {huge}: the image is more than 179 megapixels" in result.stderr
    assert result.stdout.count("ok.png: ") == 1 and "Traceback" not in result.stderr


def test_a_large_page_is_decoded_reduced_and_read_like_a_small_one(tmp_path):
    from modules.images import MAX_SIDE, read_grayscale

    large, small = tmp_path / "large.png", tmp_path / "small.png"
    write_page_png(large, 9000, 6000, (1500, 3000, 2400))  # 54 megapixels
    write_page_png(small, 900, 600, (150, 300, 240))  # the same page, 10x smaller
    image = read_grayscale(str(large))
    assert max(image.shape) <= MAX_SIDE and abs(image.shape[1] / image.shape[0] - 1.5) < 0.01
    assert np.abs(load_character(str(large)) - load_character(str(small))).mean() < 0.02
    outcome, megabytes = peak_memory_of_loading(large)
    assert outcome == "(28, 28)" and megabytes < 1024


# how to store an upright picture so that a viewer, obeying EXIF orientation
# 1-8, shows it upright again (Pillow's names for the inverse turns)
STORED_TURNED = {1: None, 2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM",
                 5: "TRANSPOSE", 6: "ROTATE_90", 7: "TRANSVERSE", 8: "ROTATE_270"}


def save_turned(path, upright, orientation, **options):
    """Save the 2-D uint8 ``upright`` as a phone would: the pixels turned, and
    the EXIF Orientation tag that tells viewers how to turn them back."""
    from PIL import Image

    image = Image.fromarray(upright)
    if STORED_TURNED[orientation]:
        turns = getattr(Image, "Transpose", Image)  # Image.Transpose from Pillow 9.1
        image = image.transpose(getattr(turns, STORED_TURNED[orientation]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("suffix, options, tolerance", [
    (".jpg", {"quality": 95}, 0.02), (".png", {}, 0.0), (".webp", {"lossless": True}, 0.0)])
def test_pictures_are_read_upright_as_their_exif_orientation_says(tmp_path, suffix, options,
                                                                  tolerance):
    from PIL import Image, ImageOps, features

    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow was built without WebP")
    paper = 255 - glyph_canvas(240)[:, 20:200]  # not square, and no symmetry
    expected = to_kmnist_input(paper)
    for orientation in range(1, 9):
        path = str(tmp_path / f"turned{orientation}{suffix}")
        save_turned(path, paper, orientation, **options)
        with Image.open(path) as stored:  # what a viewer shows is the upright page
            shown = np.asarray(ImageOps.exif_transpose(stored).convert("L"))
            assert shown.shape == paper.shape
        character = load_character(path)
        assert np.abs(character - expected).mean() <= tolerance + 1e-6, orientation
    # the turned pixels without the tag are read as they are: another input
    plain = str(tmp_path / f"plain{suffix}")
    cv2.imwrite(plain, np.rot90(paper, -1).copy())
    assert np.abs(load_character(plain) - expected).mean() > 0.05


def test_predict_saves_the_upright_input(trained, tmp_path, run):
    out, _ = trained
    paper = 255 - glyph_canvas(240)[:, 20:200]
    cv2.imwrite(str(tmp_path / "upright.png"), paper)
    save_turned(str(tmp_path / "phone.jpg"), paper, 6, quality=95)
    outputs = []
    for name in ("upright.png", "phone.jpg"):
        result = run("predict.py", "-m", out / "model.pth", "--image", tmp_path / name,
                     "--no-display", "-o", tmp_path / f"{name}.grid.png")
        assert result.returncode == 0, result.stderr
        line = next(line for line in result.stdout.splitlines() if line.startswith(str(tmp_path)))
        outputs.append(line.split(": ", 1)[1].split("  [")[0])
    assert outputs[0] == outputs[1]  # the same top class for the photo and the upright page


def test_a_large_turned_photo_is_read_reduced_and_upright(tmp_path):
    from modules.images import MAX_SIDE, read_grayscale

    page = np.full((3000, 4500), 255, np.uint8)
    page[500:2500, 1500:3200] = cv2.resize(255 - glyph_canvas(300), (1700, 2000))
    upright, turned = tmp_path / "upright.jpg", tmp_path / "turned.jpg"
    cv2.imwrite(str(upright), page, [cv2.IMWRITE_JPEG_QUALITY, 95])
    save_turned(str(turned), page, 6, quality=95)  # stored 3000 wide, 4500 high
    image = read_grayscale(str(turned))
    assert max(image.shape) <= MAX_SIDE and image.shape[1] > image.shape[0]  # landscape again
    assert np.abs(load_character(str(turned)) - load_character(str(upright))).mean() < 0.02
    outcome, megabytes = peak_memory_of_loading(turned)
    assert outcome == "(28, 28)" and megabytes < 1024


def test_a_turned_tiff_is_refused_with_a_reason(tmp_path):
    paper = 255 - glyph_canvas(120)
    save_turned(str(tmp_path / "turned.tif"), paper, 6)
    with pytest.raises(ImageProblem, match="EXIF orientation 6.*save it upright"):
        load_character(str(tmp_path / "turned.tif"))
    cv2.imwrite(str(tmp_path / "upright.tif"), paper)  # no tag: read as it is
    assert np.abs(load_character(str(tmp_path / "upright.tif")) - to_kmnist_input(paper)).max() \
        < 1e-6


def test_classifying_own_images_does_not_import_torchvision():
    """torchvision is needed only to read the data set; importing it costs
    about 1.5 s and 200 MB that --image and --draw never need."""
    import subprocess
    import sys

    from conftest import ROOT

    code = "import sys, predict; print('torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def write_with_pillow(path, paper, mode, **options):
    """``paper`` (2-D uint8, black ink on white) saved by Pillow in ``mode``."""
    from PIL import Image

    image = Image.fromarray(paper)
    if mode == "P":  # a palette picture whose white is transparent
        image = image.convert("P")
        options["transparency"] = image.getpixel((0, 0))
    elif mode == "LA":  # ink as opacity over nothing
        image = Image.merge("LA", [Image.new("L", image.size, 0), Image.fromarray(255 - paper)])
    elif mode == "1":
        image = image.point(lambda v: 255 if v >= 128 else 0).convert("1")
    else:
        image = image.convert(mode)
    image.save(path, **options)


@pytest.mark.parametrize("name, write, tolerance", [
    ("gray.png", lambda p, a: cv2.imwrite(p, a), 0),
    ("colour.png", lambda p, a: cv2.imwrite(p, cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)), 0),
    ("deep.png", lambda p, a: cv2.imwrite(p, a.astype(np.uint16) * 257), 0),  # 16-bit
    ("deep.tif", lambda p, a: cv2.imwrite(p, a.astype(np.uint16) * 257), 0),
    ("float.tif", lambda p, a: cv2.imwrite(p, a.astype(np.float32) / 255), 0),  # 0..1
    ("photo.jpg", lambda p, a: cv2.imwrite(p, a, [cv2.IMWRITE_JPEG_QUALITY, 95]), 0.02),
    ("paint.bmp", lambda p, a: cv2.imwrite(p, a), 0),
    ("scan.pgm", lambda p, a: cv2.imwrite(p, a), 0),
    ("scan.ppm", lambda p, a: cv2.imwrite(p, cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)), 0),
    ("scan.pbm", lambda p, a: write_with_pillow(p, a, "1"), 0.03),  # one bit: ink or paper
    ("palette.png", lambda p, a: write_with_pillow(p, a, "P"), 0.01),
    ("ink-only.png", lambda p, a: write_with_pillow(p, a, "LA"), 0.01),
    ("web.webp", lambda p, a: write_with_pillow(p, a, "RGB", lossless=True), 0),
])
def test_each_kind_of_image_file_gives_the_same_input(tmp_path, name, write, tolerance):
    """The same page in each format and pixel depth --image reads."""
    paper = 255 - glyph_canvas(240)[:, 20:200]
    path = str(tmp_path / name)
    write(path, paper)
    assert np.abs(load_character(path) - to_kmnist_input(paper)).mean() <= tolerance + 1e-6
