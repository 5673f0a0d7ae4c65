"""Turning a picture of one handwritten character into a KMNIST-like 28x28 input.

KMNIST's images are white ink on black, the character cropped and scaled to
fill the square.  A phone photo or scan is usually black ink on light paper,
of any size, so we do what the data set's makers did: grayscale, invert a
light background, crop to the ink with a small margin, pad to a square and
shrink with area interpolation (which averages instead of dropping pixels).
"""

import os

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pbm",
                    ".pgm", ".ppm")
# below this spread of gray levels (of 255) an image is taken to be blank
MIN_CONTRAST = 24
# margin around the ink's bounding box, as a fraction of its longer side
MARGIN = 0.04
# a character needs a few hundred pixels: larger pictures are decoded reduced
# (JPEG and PNG at 1/2, 1/4 or 1/8 straight from the file) or shrunk right
# after decoding, before any float copy is made; beyond MAX_PIXELS they are
# refused, since decoding alone would take gigabytes
MAX_SIDE = 2000
MAX_PIXELS = 100_000_000


class ImageProblem(Exception):
    """This file cannot be classified (the message says why)."""


def expand_image_paths(paths):
    """Files as given, folders replaced by the image files inside them (sorted)."""
    expanded = []
    for path in paths:
        if os.path.isdir(path):
            inside = sorted(os.path.join(path, name) for name in os.listdir(path)
                            if name.lower().endswith(IMAGE_EXTENSIONS))
            expanded.extend(inside or [path])  # an empty folder is reported, not skipped
        else:
            expanded.append(path)
    return expanded


def header_size(path):
    """(width, height, has_alpha) read from the file's header without decoding
    the pixels, or None where Pillow does not know the format."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only the header is read; the size check is ours
    try:
        with Image.open(path) as image:
            alpha = "A" in image.getbands() or "transparency" in image.info
            return image.size[0], image.size[1], alpha
    except (OSError, ValueError, SyntaxError):  # not a format Pillow knows: let OpenCV try
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _decode(path):
    """Decode ``path`` with OpenCV, at most about MAX_SIDE pixels on the long side."""
    header = header_size(path)
    if header is not None:
        width, height, alpha = header
        if width * height > MAX_PIXELS:
            raise ImageProblem(f"the image is {width}x{height} pixels "
                               f"({width * height / 1e6:,.0f} megapixels); the limit is "
                               f"{MAX_PIXELS / 1e6:,.0f} megapixels: shrink it first "
                               "(a character needs a few hundred pixels)")
        reduction = next((r for r in (1, 2, 4) if max(width, height) / r <= MAX_SIDE), 8)
        if reduction > 1 and not alpha:  # (OpenCV's reduced modes drop transparency)
            flag = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                    8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduction]
            # ignore the EXIF rotation, as IMREAD_UNCHANGED does for smaller files
            return cv2.imread(path, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def read_grayscale(path):
    """The file as a 2-D uint8 array; transparency is laid over white paper."""
    if os.path.isdir(path):
        raise ImageProblem("folder holds no image files")
    if not os.path.exists(path):
        raise ImageProblem("no such file")
    image = _decode(path)
    if image is None or image.size == 0:
        raise ImageProblem("not an image file that OpenCV can read")
    if max(image.shape[:2]) > MAX_SIDE:  # shrink before any float copy is made
        scale = MAX_SIDE / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if np.issubdtype(image.dtype, np.integer) and image.dtype != np.uint8:
        image = (image / (np.iinfo(image.dtype).max / 255)).astype(np.uint8)  # 16-bit PNG/TIFF
    elif np.issubdtype(image.dtype, np.floating):  # 32-bit float TIFF/EXR: 0..1
        image = np.clip(image * 255, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255
        image = (image[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
    return image


def to_kmnist_input(gray):
    """A 2-D uint8 picture of one character -> 28x28 float32 in [0, 1], white on black."""
    gray = gray.astype(np.float32)

    # levels are read off a lightly blurred copy, so that a few noisy pixels
    # of a photo count for nothing while a small character still counts
    levels = cv2.GaussianBlur(gray, (5, 5), 0) if min(gray.shape) >= 64 else gray

    # the border is mostly paper: nearer the light end than the dark end
    # means dark ink on light paper, which we invert to KMNIST's polarity
    border = np.concatenate([levels[0], levels[-1], levels[:, 0], levels[:, -1]])
    if np.median(border) > (levels.min() + levels.max()) / 2:
        gray, levels, border = 255 - gray, 255 - levels, 255 - border
    # stretch so the paper is 0 and the strongest ink is 1, like KMNIST
    background = np.median(border)
    strongest = levels.max()
    if strongest - background < MIN_CONTRAST:
        raise ImageProblem("the image is blank (no ink stands out from the background)")
    ink = np.clip((gray - background) / (strongest - background), 0, 1)

    # the character's bounding box: where the (blurred) ink is clearly
    # stronger than the paper, so lone specks of noise do not widen it
    rows, cols = np.nonzero(levels - background > 0.5 * (strongest - background))
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    ink = ink[top:bottom, left:right]

    # pad to a square with a small margin, keeping the character centred
    height, width = ink.shape
    side = int(round(max(height, width) * (1 + 2 * MARGIN)))
    square = np.zeros((side, side), np.float32)
    y, x = (side - height) // 2, (side - width) // 2
    square[y:y + height, x:x + width] = ink
    interpolation = cv2.INTER_AREA if side >= 28 else cv2.INTER_LINEAR
    return cv2.resize(square, (28, 28), interpolation=interpolation)


def load_character(path):
    """Read ``path`` and make it a 28x28 KMNIST-like array (raises ImageProblem)."""
    try:
        return to_kmnist_input(read_grayscale(path))
    except cv2.error as error:
        raise ImageProblem(f"OpenCV could not decode it ({error.err or error})") from None
