"""A drawing from the page of ``predict.py --draw``, as LeNet reads it and as it is saved.

``Canvas`` holds the strokes the page sends (lists of [x, y] canvas pixels,
the one form a stroke has from the page to the 28x28 input) and renders
them black on white; ``read_drawing`` puts that picture through the
preprocessing of ``predict.py --image`` and the model; ``DrawingFolder``
saves drawings as numbered PNG files that ``--image`` reads back.
"""

import os
import re
import tempfile
import threading

import cv2
import numpy as np
import torch

from modules.classify import describe_top, feature_maps
from modules.data import CLASS_NAMES
from modules.images import ImageProblem, to_kmnist_input
from modules.outputs import ordinary_mode

CANVAS_SIZE = 336  # pixels, 12 x 28
# KMNIST's strokes are about 2.2 pixels wide on a character 26 tall; a
# character drawn over three quarters of the canvas is shrunk about tenfold
BRUSH_WIDTH = round(2.2 / 26 * 0.75 * CANVAS_SIZE)
MAX_DRAWINGS = 1000  # saved into one folder, at most
MAP_SIZE = 48  # each 24x24 conv1 feature map shown at 48x48
MAP_GAP_COLOUR = (40, 40, 40)  # BGR, the page's background
FOR_TOP, FOR_RUNNER_UP = (60, 200, 40), (220, 50, 220)  # BGR: green, magenta
SAVED_NAME = re.compile(r"drawing-(\d+)\.png")


class Canvas:
    """White paper with black strokes: each stroke an array of (x, y) pixels,
    rounded as the page rounds them, points off the paper moved to its edge."""

    def __init__(self, strokes=()):
        self.size = CANVAS_SIZE
        self.strokes = [np.clip(np.rint(np.array(stroke, np.float64)), 0, self.size - 1)
                        .astype(np.int32).reshape(-1, 2) for stroke in strokes]

    def image(self):
        """The drawing as a ``size`` x ``size`` uint8 picture, black ink on white."""
        paper = np.full((self.size, self.size), 255, np.uint8)
        for stroke in self.strokes:
            # a round brush: lines between the points, round ends (a click leaves a dot)
            cv2.polylines(paper, [stroke], False, 0, BRUSH_WIDTH, cv2.LINE_AA)
            for (x, y) in (stroke[0], stroke[-1]):
                cv2.circle(paper, (int(x), int(y)), BRUSH_WIDTH // 2, 0, -1, cv2.LINE_AA)
        return paper


class NotSaved(Exception):
    """A drawing could not be saved (the message says why)."""


class DrawingFolder:
    """Drawings saved as drawing-001.png, drawing-002.png, ...: at most
    MAX_DRAWINGS, each written beside its name and linked into place, so a
    failed write (a full disk) leaves no file and uses no number."""

    def __init__(self, path, log=print):
        (self.path, self.log, self.lock) = (path, log, threading.Lock())  # (two tabs may save)
        self.count = self.next = None

    def _recount(self):
        names = os.listdir(self.path) if os.path.isdir(self.path) else []
        taken = [int(m[1]) for m in map(SAVED_NAME.fullmatch, names) if m]
        (self.count, self.next) = (len(taken), max(taken, default=0) + 1)

    def save(self, canvas):
        """Write ``canvas`` as a PNG and say so; returns its path, or raises NotSaved."""
        data = cv2.imencode(".png", canvas.image())[1].tobytes()
        with self.lock:
            if self.next is None or self.count >= MAX_DRAWINGS:  # (drawings may have moved away)
                self._recount()
            if self.count >= MAX_DRAWINGS:
                raise NotSaved(f"{self.path} holds {MAX_DRAWINGS:,} drawings, as many as are "
                               "kept; move some elsewhere to save more")
            try:
                os.makedirs(self.path, exist_ok=True)
                path = self._write(data)
            except OSError as error:
                raise NotSaved(f"could not save the drawing: {error.strerror or error}") from None
            self.count += 1
        self.log(f"[INFO] saved the drawing to {path} "
                 f"(classify it again with: python predict.py --image {path})")
        return path

    def _write(self, data):
        (fd, temporary) = tempfile.mkstemp(prefix=".drawing-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(temporary, ordinary_mode(None))
            while True:
                path = os.path.join(self.path, f"drawing-{self.next:03d}.png")
                try:  # link(): never replaces a file, never follows a link
                    os.link(temporary, path)
                    self.next += 1
                    return path
                except FileExistsError:  # a file another program made
                    self.next += 1
        finally:
            os.unlink(temporary)


class Reading:
    """What the model made of one drawing: the 28x28 input in [0, 1] and where
    it lies on the canvas (top, left, side), the 10 class probabilities and
    conv1's 20 feature maps (all None: nothing drawn)."""

    def __init__(self, character=None, frame=None, probabilities=None, maps=None):
        (self.character, self.frame) = (character, frame)
        (self.probabilities, self.maps) = (probabilities, maps)

    @property
    def empty(self):
        return self.probabilities is None

    def console_line(self):
        return f"[INFO] drawing: {describe_top(self.probabilities)}"


def read_drawing(model, picture, device):
    """Preprocess ``picture`` as ``--image`` does, then classify it."""
    try:
        (character, frame) = to_kmnist_input(picture, frame=True)
    except ImageProblem:  # nothing drawn (or nothing that stands out)
        return Reading()
    # conv1's maps and the class probabilities from one forward pass
    (first, log_probs) = feature_maps(model, torch.as_tensor(character)[None, None].to(device),
                                      ("relu1", "logSoftmax"))
    return Reading(character, frame, log_probs[0].exp().numpy(), first[0].numpy())


def decision_overlay(picture, frame, pixels):
    """``pixels`` (classify.decisive_pixels' 28x28 map) laid over the ink of
    ``picture``, the canvas, at its scale: a BGRA image, clear off the ink,
    green where ink argued for the top class, magenta for the runner-up, the
    stronger the more opaque."""
    (top, left, side) = frame
    square = cv2.resize(pixels / max(float(np.abs(pixels).max()), 1e-12), (side, side),
                        interpolation=cv2.INTER_LINEAR)
    weight = np.zeros(picture.shape, np.float32)
    (y0, x0) = (max(top, 0), max(left, 0))  # (the square may reach past the edges)
    (y1, x1) = (min(top + side, picture.shape[0]), min(left + side, picture.shape[1]))
    weight[y0:y1, x0:x1] = square[y0 - top:y1 - top, x0 - left:x1 - left]
    weight[picture >= 128] = 0  # on the ink only
    overlay = np.zeros((*picture.shape, 4), np.uint8)
    overlay[..., :3] = np.where(weight[..., None] > 0, FOR_TOP, FOR_RUNNER_UP)
    overlay[..., 3] = np.sqrt(np.clip(np.abs(weight), 0, 1)) * 230  # (weak ink stays visible)
    return overlay


def reference_images(test_data=None, size=48):
    """One picture per class for the page's strip of the ten classes: the
    first test image of each where the data set is at hand, else None."""
    if test_data is not None:
        (images, labels) = (test_data.data.numpy(), test_data.targets.numpy())
        firsts = [np.flatnonzero(labels == k) for k in range(len(CLASS_NAMES))]
        if all(len(f) for f in firsts):
            return [cv2.resize(images[f[0]], (size, size), interpolation=cv2.INTER_NEAREST)
                    for f in firsts]
    return [None] * len(CLASS_NAMES)


def feature_map_grid(maps, columns=10, gap=4):
    """conv1's feature maps as one BGR picture: each enlarged to MAP_SIZE, all
    on one brightness scale, coloured with magma, in rows of ``columns``."""
    scale = max(float(maps.max()), 1e-6)
    stack = np.vstack([cv2.resize((np.clip(fmap / scale, 0, 1) * 255).astype(np.uint8),
                                  (MAP_SIZE, MAP_SIZE), interpolation=cv2.INTER_NEAREST)
                       for fmap in maps])
    rows = len(maps) // columns
    tiles = cv2.applyColorMap(stack, cv2.COLORMAP_MAGMA).reshape(rows, columns, MAP_SIZE,
                                                                  MAP_SIZE, 3)
    grid = np.empty((rows, MAP_SIZE + gap, columns, MAP_SIZE + gap, 3), np.uint8)
    grid[:] = MAP_GAP_COLOUR
    grid[:, :MAP_SIZE, :, :MAP_SIZE] = tiles.transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * (MAP_SIZE + gap), columns * (MAP_SIZE + gap), 3)[:-gap, :-gap]
