"""Tiny, learnable data sets written in KMNIST's own IDX file format.

Each class is a fixed random pattern of thick strokes; samples are that
pattern shifted by a pixel or two, with varying brightness and noise, so a
LeNet learns them in an epoch or two while the files go through the real
loading code (torchvision's KMNIST parser) unchanged.
"""

import gzip
import os
import struct

import numpy as np

FILE_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array):
    """IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.tobytes()


def class_strokes(seed=0):
    """Each class's three strokes as (row0, col0, row1, col1) on the 28x28 grid."""
    rng = np.random.default_rng(seed)
    return [[tuple(int(v) for v in rng.integers(5, 23, size=4)) for _ in range(3)]
            for _ in range(10)]


def class_patterns(seed=0):
    """Ten distinct 28x28 patterns in [0, 1]: random thick strokes per class."""
    patterns = np.zeros((10, 28, 28), np.float32)
    for k, strokes in enumerate(class_strokes(seed)):
        for (r0, c0, r1, c1) in strokes:
            for t in np.linspace(0, 1, 40):
                r, c = int(r0 + (r1 - r0) * t), int(c0 + (c1 - c0) * t)
                patterns[k, r - 1:r + 2, c - 1:c + 2] = 1.0
    return patterns


def make_split(count, rng, patterns):
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = np.zeros((count, 28, 28), np.float32)
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-2, 3, size=2)
        image = np.roll(patterns[label], (dy, dx), axis=(0, 1))
        images[i] = image * rng.uniform(0.6, 1.0) + rng.normal(0, 0.1, (28, 28))
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels.astype(np.uint8)


def framed(images):
    """Each image cropped to its character and scaled to fill the square, as
    KMNIST's makers framed theirs and as --image and --draw frame a picture."""
    from modules.images import to_kmnist_input

    return np.stack([(to_kmnist_input(image) * 255).round().astype(np.uint8)
                     for image in images])


def write_kmnist(root, n_train=600, n_test=200, seed=0, gzipped=False, frame=False):
    """Write the four files under ``root``/KMNIST/raw/; returns that folder.
    ``frame``: characters framed like KMNIST's (see ``framed``)."""
    raw = os.path.join(root, "KMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    patterns = class_patterns(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        images, labels = make_split(count, rng, patterns)
        if frame:
            images = framed(images)
        for kind, array in (("images", images), ("labels", labels)):
            path = os.path.join(raw, FILE_NAMES[(split, kind)])
            data = idx_bytes(array)
            if gzipped:
                with gzip.open(path + ".gz", "wb") as f:
                    f.write(data)
            else:
                with open(path, "wb") as f:
                    f.write(data)
    return raw
