"""Turning a picture of one handwritten character into a KMNIST-like 28x28 input.

KMNIST's images are white ink on black, the character cropped and scaled to
fill the square.  A phone photo or scan is usually black ink on light paper,
of any size and often stored sideways, so we do what the data set's makers
did: upright, grayscale, invert a light background, crop to the ink with a
small margin, pad to a square and shrink with area interpolation.
"""

import os
import stat
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pbm",
                    ".pgm", ".ppm")
MIN_CONTRAST = 24  # below this spread of gray levels (of 255) an image is blank
MARGIN = 0.04  # around the ink's bounding box, as a fraction of its longer side
# a character needs a few hundred pixels: larger pictures are shrunk to
# MAX_SIDE (JPEGs decoded reduced straight from the file); beyond MAX_PIXELS
# they are refused from their header, since decoding would take gigabytes
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
    try:
        with warnings.catch_warnings():  # (Pillow warns of what our own limit refuses)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # lazy: the header only
    except Image.DecompressionBombError:  # past twice Pillow's own limit: no size given
        raise ImageProblem(too_large(f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:,.0f} "
                                     "megapixels")) from None
    except (OSError, ValueError, SyntaxError):
        raise ImageProblem("not an image file that Pillow can read") from None
    with image:
        (width, height) = image.size
        if width * height > MAX_PIXELS:
            raise ImageProblem(too_large(f"{width}x{height} pixels "
                                         f"({width * height / 1e6:,.0f} megapixels)"))
        if image.format == "TIFF" and (turned := image.getexif().get(ORIENTATION_TAG, 1)) != 1:
            # (Pillow's TIFF reader turns some of these itself, and exif_transpose again)
            raise ImageProblem(f"this TIFF file asks to be shown turned (EXIF orientation "
                               f"{turned}), which the image libraries read unreliably; save "
                               "it upright, or as PNG or JPEG")
        shrink = MAX_SIDE / max(width, height)
        if shrink < 1:  # JPEG: decoded at 1/2, 1/4 or 1/8 straight from the file
            image.draft("L", (int(width * shrink), int(height * shrink)))
        try:
            image = ImageOps.exif_transpose(image)  # phones store a portrait photo sideways
            if max(image.size) > MAX_SIDE:  # shrink before any float copy is made
                image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)
            return grayscale(image)
        except (OSError, ValueError, SyntaxError) as error:  # a damaged file
            raise ImageProblem(f"Pillow could not decode it ({error})") from None


def too_large(size):
    return (f"the image is {size}; the limit is {MAX_PIXELS / 1e6:,.0f} megapixels: "
            "shrink it first (a character needs a few hundred pixels)")


def grayscale(image):
    """A Pillow image of any mode as 2-D uint8, transparency over white paper."""
    if image.mode.startswith("I"):  # 16-bit PNG or TIFF
        return (np.asarray(image, np.float64) / 257).clip(0, 255).round().astype(np.uint8)
    if image.mode == "F":  # 32-bit float TIFF: 0..1
        return (np.asarray(image) * 255).clip(0, 255).astype(np.uint8)
    if "A" in image.getbands() or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"))


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
