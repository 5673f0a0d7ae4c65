"""Turning a picture of one handwritten character into a KMNIST-like 28x28 input.

KMNIST's images are white ink on black, the character cropped and scaled to
fill the square.  A phone photo or scan is usually black ink on light paper,
of any size, so we do what the data set's makers did: grayscale, invert a
light background, crop to the ink with a small margin, pad to a square and
shrink with area interpolation (which averages instead of dropping pixels).
"""

import os
import stat
import struct
from typing import NamedTuple

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
# EXIF's Orientation tag: how a viewer turns the stored pixels to show them
ORIENTATION_TAG = 0x0112


class ImageProblem(Exception):
    """This file cannot be classified (the message says why)."""


def expand_image_paths(paths):
    """Files as given, folders replaced by the image files inside them (sorted).

    Returns (files, folders that hold no image file): an empty folder is
    reported by the caller, not counted as a file that could not be read.
    """
    (files, empty_folders) = ([], [])
    for path in paths:
        if os.path.isdir(path):
            inside = sorted(os.path.join(path, name) for name in os.listdir(path)
                            if name.lower().endswith(IMAGE_EXTENSIONS))
            files.extend(inside)
            if not inside:
                empty_folders.append(path)
        else:
            files.append(path)
    return files, empty_folders


# what a path that is not a regular file is instead (reading one could wait
# forever: a named pipe blocks until something writes to it)
_SPECIAL_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISSOCK, "a socket"))


class Header(NamedTuple):
    """What a picture's header says, read without decoding its pixels."""
    format: str  # Pillow's name for it: "JPEG", "PNG", "TIFF", ...
    width: int  # as stored, before any turn
    height: int
    alpha: bool
    orientation: int  # EXIF's Orientation: 1 = as stored, 2-8 = flipped and/or turned


def read_header(path):
    """The picture's size, transparency and orientation, or None where Pillow
    does not know the format."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only the header is read; the size check is ours
    try:
        with Image.open(path) as image:
            alpha = "A" in image.getbands() or "transparency" in image.info
            if image.format == "PNG":  # Pillow's getexif would decode a PNG's pixels
                exif = Image.Exif()
                data = _png_exif_chunk(path)
                if data:
                    exif.load(data)
            else:
                exif = image.getexif()
            orientation = exif.get(ORIENTATION_TAG, 1)
            return Header(image.format, image.size[0], image.size[1], alpha,
                          orientation if orientation in range(1, 9) else 1)
    except (OSError, ValueError, SyntaxError, struct.error):  # let OpenCV try
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _png_exif_chunk(path):
    """The bytes of a PNG's eXIf chunk, or None: the chunks' headers are read
    and their contents skipped, so no pixel is decoded."""
    with open(path, "rb") as f:
        f.seek(8)  # the PNG signature
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            (length, kind) = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                return f.read(length)
            if kind == b"IEND":
                return None
            f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC


def upright(image, orientation):
    """The pixels turned the way an image viewer shows them, for EXIF's
    Orientation values 1-8 (phones store a portrait photo as the sensor read
    it, sideways, and set this tag instead of turning the pixels)."""
    turned = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored left to right
        3: lambda a: a[::-1, ::-1],  # turned by 180 degrees
        4: lambda a: a[::-1],  # mirrored top to bottom
        5: lambda a: a.swapaxes(0, 1),  # mirrored along the main diagonal
        6: lambda a: np.rot90(a, -1),  # turned a quarter clockwise
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],  # mirrored along the other diagonal
        8: lambda a: np.rot90(a, 1),  # turned a quarter anticlockwise
    }[orientation](image)
    return np.ascontiguousarray(turned)


def _decode(path):
    """Decode ``path`` with OpenCV, at most about MAX_SIDE pixels on the long
    side, and turn it upright as its EXIF orientation says."""
    header = read_header(path)
    orientation = header.orientation if header is not None else 1
    # OpenCV's own handling of the tag differs between formats and versions,
    # so it is told to ignore it (IMREAD_UNCHANGED does) and we apply it
    flag = cv2.IMREAD_UNCHANGED
    if header is not None:
        pixels = header.width * header.height
        if pixels > MAX_PIXELS:
            raise ImageProblem(f"the image is {header.width}x{header.height} pixels "
                               f"({pixels / 1e6:,.0f} megapixels); the limit is "
                               f"{MAX_PIXELS / 1e6:,.0f} megapixels: shrink it first "
                               "(a character needs a few hundred pixels)")
        longest = max(header.width, header.height)
        reduction = next((r for r in (1, 2, 4) if longest / r <= MAX_SIDE), 8)
        if reduction > 1 and not header.alpha:  # (OpenCV's reduced modes drop transparency)
            flag = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                    8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduction]
            flag |= cv2.IMREAD_IGNORE_ORIENTATION
    if orientation != 1 and header.format == "TIFF":
        # measured with OpenCV 5.1 and Pillow 13: OpenCV turns orientations
        # 2-4 itself and fails on 5-8, Pillow turns some modes and not others
        raise ImageProblem(f"this TIFF file asks to be shown turned (EXIF orientation "
                           f"{orientation}), which the image libraries read unreliably; "
                           "save it upright, or as PNG or JPEG")
    image = cv2.imread(path, flag)
    if image is None or orientation == 1:
        return image
    return upright(image, orientation)


def read_grayscale(path):
    """The file as a 2-D uint8 array; transparency is laid over white paper."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise ImageProblem("no such file") from None
    except OSError as error:
        raise ImageProblem(f"cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(status.st_mode):  # (predict.py expands folders before this)
        kind = next((name for (test, name) in _SPECIAL_FILES if test(status.st_mode)),
                    "a special file")
        raise ImageProblem(f"this is {kind}, not an image file")
    if status.st_size == 0:
        raise ImageProblem("the file is empty")
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
