"""Turning a picture of one handwritten character into a KMNIST-like 28x28 input.

KMNIST's images are white ink on black, the character cropped and scaled to
fill the square.  A phone photo or scan is usually black ink on light paper,
of any size and often stored sideways, so we do what the data set's makers
did: upright, grayscale, invert a light background, crop to the ink with a
small margin, pad to a square and shrink with area interpolation.
"""

import os
import stat
import struct

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pbm",
                    ".pgm", ".ppm")
MIN_CONTRAST = 24  # below this spread of gray levels (of 255) an image is blank
MARGIN = 0.04  # around the ink's bounding box, as a fraction of its longer side
# a character needs a few hundred pixels: larger pictures are decoded reduced
# (JPEG and PNG at 1/2, 1/4 or 1/8 straight from the file); beyond MAX_PIXELS
# they are refused, since decoding alone would take gigabytes
MAX_SIDE = 2000
MAX_PIXELS = 100_000_000
ORIENTATION_TAG = 0x0112  # EXIF: how a viewer turns the stored pixels to show them


class ImageProblem(Exception):
    """This file cannot be classified (the message says why)."""


def expand_image_paths(paths):
    """(files as given with folders replaced by their image files, sorted;
    the folders that hold none)."""
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


def _png_exif(path):
    """A PNG's eXIf chunk, read by skipping the other chunks (Pillow's getexif
    would decode every pixel first)."""
    with open(path, "rb") as f:
        f.seek(8)  # the PNG signature
        while len(head := f.read(8)) == 8:
            (length, kind) = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                return f.read(length)
            if kind == b"IEND":
                break
            f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return None


def read_header(path):
    """(format, width, height, has transparency, EXIF orientation 1-8) from
    the file's header, or None where Pillow does not know the format."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own size check follows
    try:
        with Image.open(path) as image:
            if image.format == "PNG":
                exif = Image.Exif()
                exif.load(_png_exif(path) or b"")
            else:
                exif = image.getexif()
            orientation = exif.get(ORIENTATION_TAG, 1)
            alpha = "A" in image.getbands() or "transparency" in image.info
            return (image.format, *image.size, alpha,
                    orientation if orientation in range(1, 9) else 1)
    except (OSError, ValueError, SyntaxError, struct.error):  # let OpenCV try
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def upright(image, orientation):
    """The pixels turned the way a viewer shows them, for EXIF orientations 1-8
    (phones store a portrait photo sideways and set this tag instead)."""
    if orientation >= 5:  # 5-8 are 1-4 after a swap of rows and columns
        (image, orientation) = (image.swapaxes(0, 1), orientation - 4)
    if orientation in (3, 4):
        image = image[::-1]  # upside down
    if orientation in (2, 3):
        image = image[:, ::-1]  # mirrored
    return np.ascontiguousarray(image)


def read_grayscale(path):
    """The file as a 2-D uint8 array, upright; transparency laid over white paper."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise ImageProblem(f"cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(status.st_mode):  # a named pipe would wait for a writer forever
        raise ImageProblem("this is not a regular file, so not an image file")
    if status.st_size == 0:
        raise ImageProblem("the file is empty")
    header = read_header(path)
    (kind, width, height, alpha, orientation) = header or (None, 0, 0, False, 1)
    if width * height > MAX_PIXELS:
        raise ImageProblem(f"the image is {width}x{height} pixels ({width * height / 1e6:,.0f} "
                           f"megapixels); the limit is {MAX_PIXELS / 1e6:,.0f} megapixels: "
                           "shrink it first (a character needs a few hundred pixels)")
    if orientation != 1 and kind == "TIFF":  # OpenCV and Pillow each turn only some of these
        raise ImageProblem(f"this TIFF file asks to be shown turned (EXIF orientation "
                           f"{orientation}), which the image libraries read unreliably; "
                           "save it upright, or as PNG or JPEG")
    # OpenCV is told to ignore the orientation (IMREAD_UNCHANGED does): we turn it ourselves
    flag = cv2.IMREAD_UNCHANGED
    reduction = next((r for r in (1, 2, 4) if max(width, height) / r <= MAX_SIDE), 8)
    if reduction > 1 and not alpha:  # (OpenCV's reduced modes drop transparency)
        flag = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[reduction] | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        image = cv2.imread(path, flag)
    except cv2.error as error:
        raise ImageProblem(f"OpenCV could not decode it ({error.err or error})") from None
    if image is None or image.size == 0:
        raise ImageProblem("not an image file that OpenCV can read")
    image = upright(image, orientation)
    if max(image.shape[:2]) > MAX_SIDE:  # shrink before any float copy is made
        scale = MAX_SIDE / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if np.issubdtype(image.dtype, np.integer) and image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = (image / (np.iinfo(image.dtype).max / 255)).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):  # 32-bit float TIFF: 0..1
        image = np.clip(image * 255, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255
        image = (image[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
    return image


def to_kmnist_input(gray, frame=False):
    """A 2-D uint8 picture of one character -> 28x28 float32 in [0, 1], white on
    black; with ``frame``, also where the 28x28 square lies in the picture:
    (top, left, side) in its pixels."""
    gray = gray.astype(np.float32)

    # levels are read off a lightly blurred copy, so that a few noisy pixels
    # of a photo count for nothing while a small character still counts
    levels = cv2.GaussianBlur(gray, (5, 5), 0) if min(gray.shape) >= 64 else gray

    # the border is mostly paper: nearer the light end than the dark end
    # means dark ink on light paper, which we invert to KMNIST's polarity
    border = np.concatenate([levels[0], levels[-1], levels[:, 0], levels[:, -1]])
    if np.median(border) > (levels.min() + levels.max()) / 2:
        (gray, levels, border) = (255 - gray, 255 - levels, 255 - border)
    # stretch so the paper is 0 and the strongest ink is 1, like KMNIST
    (background, strongest) = (np.median(border), levels.max())
    if strongest - background < MIN_CONTRAST:
        raise ImageProblem("the image is blank (no ink stands out from the background)")
    ink = np.clip((gray - background) / (strongest - background), 0, 1)

    # the character's bounding box: where the (blurred) ink is clearly
    # stronger than the paper, so lone specks of noise do not widen it
    rows, cols = np.nonzero(levels - background > 0.5 * (strongest - background))
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]

    # pad to a square with a small margin, keeping the character centred
    (height, width) = ink.shape
    side = int(round(max(height, width) * (1 + 2 * MARGIN)))
    square = np.zeros((side, side), np.float32)
    (y, x) = ((side - height) // 2, (side - width) // 2)
    square[y:y + height, x:x + width] = ink
    interpolation = cv2.INTER_AREA if side >= 28 else cv2.INTER_LINEAR
    character = cv2.resize(square, (28, 28), interpolation=interpolation)
    return (character, (rows.min() - y, cols.min() - x, side)) if frame else character


def load_character(path):
    """Read ``path`` and make it a 28x28 KMNIST-like array (raises ImageProblem)."""
    return to_kmnist_input(read_grayscale(path))
