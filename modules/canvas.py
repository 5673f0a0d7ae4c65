"""Draw a character and watch LeNet read it: everything but the window.

``Canvas`` renders strokes as black ink on white paper; ``read_drawing``
puts it through the preprocessing of ``predict.py --image`` and the model;
``compose`` builds the window's picture; ``DrawingSession`` is the window's
state and ``DrawingFolder`` where drawings are saved.  All of it works on
NumPy images, so it is tested without a display.
"""

import os
import re
import threading
import time

import cv2
import numpy as np
import torch

from modules.classify import class_probabilities, describe_top, feature_maps, top_classes
from modules.data import CLASS_NAMES
from modules.images import ImageProblem, to_kmnist_input

CANVAS_SIZE = 336  # screen pixels, 12 x 28
# KMNIST's strokes are about 2.2 pixels wide on a character 26 tall; a
# character drawn over three quarters of the canvas is shrunk about tenfold
BRUSH_WIDTH = round(2.2 / 26 * 0.75 * CANVAS_SIZE)
LIVE_INTERVAL = 0.08  # seconds: while the mouse moves, read the drawing at most this often
MAX_DRAWINGS = 1000  # saved into one folder, at most

# the window's picture (BGR): a dark background, so the paper stands out
BACKGROUND = (40, 40, 40)
PAPER_BORDER = (0, 200, 255)
TEXT = (235, 235, 235)
DIM_TEXT = (160, 160, 160)
BAR = (80, 200, 80)
MARGIN = 16
CANVAS_TOP = 44
SIDE_LEFT = MARGIN + CANVAS_SIZE + 28
INSET = 28 * 6  # the 28x28 input shown at 168x168
INSET_TOP = CANVAS_TOP + 14
BARS_LEFT = SIDE_LEFT + INSET + 24
MAP_SIZE = 48  # each 24x24 conv1 feature map shown at 48x48
MAPS_TOP = INSET_TOP + INSET + 34
REFERENCE_TOP = CANVAS_TOP + CANVAS_SIZE + 34
REFERENCE_CELL = 84
WIDTH = SIDE_LEFT + 10 * (MAP_SIZE + 4) + MARGIN
HEIGHT = REFERENCE_TOP + 60 + 48 + 34
KEYS = "left mouse: draw    z: undo    c: clear    s: save drawing    q / Esc: quit"


class Canvas:
    """White paper with black strokes; each stroke is a list of (x, y) points."""

    def __init__(self, strokes=()):
        self.size = CANVAS_SIZE
        # points off the paper go to its edge (truncated like int(), as inside() does)
        self.strokes = [np.clip(np.array(stroke, np.float64), 0, self.size - 1).astype(np.int32)
                        for stroke in strokes]

    def inside(self, x, y):
        return (min(max(int(x), 0), self.size - 1), min(max(int(y), 0), self.size - 1))

    def image(self):
        """The drawing as a ``size`` x ``size`` uint8 picture, black ink on white."""
        paper = np.full((self.size, self.size), 255, np.uint8)
        for stroke in self.strokes:
            # a round brush: lines between the points, round ends (a click leaves a dot)
            cv2.polylines(paper, [np.array(stroke, np.int32)], False, 0, BRUSH_WIDTH, cv2.LINE_AA)
            for end in (stroke[0], stroke[-1]):
                cv2.circle(paper, (int(end[0]), int(end[1])), BRUSH_WIDTH // 2, 0, -1, cv2.LINE_AA)
        return paper


class NotSaved(Exception):
    """A drawing could not be saved (the message says why)."""


class DrawingFolder:
    """Drawings saved as drawing-001.png, drawing-002.png, ...: at most
    MAX_DRAWINGS, the folder read once, then each name the next number."""

    def __init__(self, path, log=print):
        (self.path, self.log, self.lock) = (path, log, threading.Lock())  # (two tabs may save)
        self.count = self.next = None

    def save(self, canvas):
        """Write ``canvas`` as a PNG and say so; returns its path, or raises NotSaved."""
        with self.lock:
            if self.next is None:
                names = os.listdir(self.path) if os.path.isdir(self.path) else []
                taken = [int(m[1]) for m in map(re.compile(r"drawing-(\d+)\.png").fullmatch, names)
                         if m]
                (self.count, self.next) = (len(taken), max(taken, default=0) + 1)
            if self.count >= MAX_DRAWINGS:
                raise NotSaved(f"{self.path} holds {MAX_DRAWINGS:,} drawings, as many as are "
                               "kept; move some elsewhere to save more")
            try:
                os.makedirs(self.path, exist_ok=True)
                while True:  # "x": never overwrite, not even a file another program made
                    path = os.path.join(self.path, f"drawing-{self.next:03d}.png")
                    self.next += 1
                    try:
                        with open(path, "xb") as f:
                            f.write(cv2.imencode(".png", canvas.image())[1].tobytes())
                        break
                    except FileExistsError:
                        continue
            except OSError as error:
                raise NotSaved(f"could not save the drawing: {error}") from None
            self.count += 1
            self.log(f"[INFO] saved the drawing to {path} "
                     f"(classify it again with: python predict.py --image {path})")
            return path


class Reading:
    """What the model made of one drawing: the 28x28 input in [0, 1], the 10
    class probabilities and conv1's 20 feature maps (all None: nothing drawn)."""

    def __init__(self, character=None, probabilities=None, maps=None):
        (self.character, self.probabilities, self.maps) = (character, probabilities, maps)

    @property
    def empty(self):
        return self.probabilities is None

    def console_line(self):
        return f"[INFO] drawing: {describe_top(self.probabilities)}"


def read_drawing(model, picture, device):
    """Preprocess ``picture`` as ``--image`` does, then classify it."""
    try:
        character = to_kmnist_input(picture)
    except ImageProblem:  # nothing drawn (or nothing that stands out)
        return Reading()
    probabilities = class_probabilities(model, character, device)
    (first, _) = feature_maps(model, torch.as_tensor(character)[None, None].to(device))
    return Reading(character, probabilities, first[0].numpy())


def reference_images(test_data=None, glyph_masks=None, size=48):
    """One picture per class for the reference strip: a real test image where
    the data set is at hand, else the printed glyph, else None (romaji only)."""
    if test_data is not None:
        (images, labels) = (test_data.data.numpy(), test_data.targets.numpy())
        firsts = [np.flatnonzero(labels == k) for k in range(len(CLASS_NAMES))]
        if all(len(f) for f in firsts):
            return [cv2.resize(images[f[0]], (size, size), interpolation=cv2.INTER_NEAREST)
                    for f in firsts]
    if glyph_masks is not None:
        return [cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
                for mask in glyph_masks]
    return [None] * len(CLASS_NAMES)


def _text(picture, text, origin, scale=0.5, color=TEXT, bold=False):
    cv2.putText(picture, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1 + bold,
                cv2.LINE_AA)


def _paste_mask(picture, mask, top, left, size, color=TEXT):
    """Blend a uint8 mask (255 = ink), resized to ``size``, into ``picture`` in ``color``."""
    alpha = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)[..., None] / 255
    region = picture[top:top + size, left:left + size]
    region[:] = (region * (1 - alpha) + np.array(color) * alpha).astype(np.uint8)


def background(references, glyph_masks=None):
    """The parts of the window's picture that never change."""
    picture = np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8)
    _text(picture, "Draw one hiragana character: LeNet reads it as you draw", (MARGIN, 28), 0.65)
    cv2.rectangle(picture, (MARGIN - 3, CANVAS_TOP - 3),
                  (MARGIN + CANVAS_SIZE + 2, CANVAS_TOP + CANVAS_SIZE + 2), PAPER_BORDER, 3)
    _text(picture, "what LeNet sees (28x28)", (SIDE_LEFT, CANVAS_TOP + 4), color=DIM_TEXT)
    cv2.rectangle(picture, (SIDE_LEFT - 1, INSET_TOP - 1), (SIDE_LEFT + INSET, INSET_TOP + INSET),
                  DIM_TEXT, 1)
    _text(picture, "top 3", (BARS_LEFT, CANVAS_TOP + 4), color=DIM_TEXT)
    _text(picture, "conv1: the 20 feature maps of this drawing (bright = strong response)",
          (SIDE_LEFT, MAPS_TOP - 10), 0.45, DIM_TEXT)
    _text(picture, "The ten classes: draw one of these", (MARGIN, REFERENCE_TOP - 10),
          color=DIM_TEXT)
    for k, name in enumerate(CLASS_NAMES):
        x = MARGIN + k * REFERENCE_CELL
        if references[k] is not None:
            (h, w) = references[k].shape
            picture[REFERENCE_TOP:REFERENCE_TOP + h, x:x + w] = references[k][..., None]
        _text(picture, name, (x, REFERENCE_TOP + 68))
        if glyph_masks is not None:  # the printed character beside its name
            _paste_mask(picture, glyph_masks[k], REFERENCE_TOP + 52, x + 34, 22)
    _text(picture, KEYS, (MARGIN, HEIGHT - 14), color=PAPER_BORDER)
    return picture


def compose(canvas_image, reading, references, glyph_masks=None, base=None):
    """The window's whole picture (BGR, HEIGHT x WIDTH); ``base`` is
    ``background(...)``, made once by a caller that composes many."""
    picture = (background(references, glyph_masks) if base is None else base).copy()
    size = canvas_image.shape[0]
    picture[CANVAS_TOP:CANVAS_TOP + size, MARGIN:MARGIN + size] = canvas_image[..., None]
    if reading.empty:
        for row in range(3):
            _text(picture, "-", (BARS_LEFT, INSET_TOP + 32 + row * 54), 0.6, DIM_TEXT)
        _text(picture, "(draw something)", (SIDE_LEFT, MAPS_TOP + 30), color=DIM_TEXT)
        return picture

    # what the network receives: the 28x28 input, enlarged
    enlarged = cv2.resize((reading.character * 255).astype(np.uint8), (INSET, INSET),
                          interpolation=cv2.INTER_NEAREST)
    picture[INSET_TOP:INSET_TOP + INSET, SIDE_LEFT:SIDE_LEFT + INSET] = enlarged[..., None]

    # the top 3 classes as bars, with romaji and (where a font has it) the glyph
    bar_left = BARS_LEFT + 100
    bar_width = WIDTH - MARGIN - 56 - bar_left
    for row, k in enumerate(top_classes(reading.probabilities)):
        y = INSET_TOP + 6 + row * 54
        if glyph_masks is not None:
            _paste_mask(picture, glyph_masks[k], y, BARS_LEFT, 36)
        _text(picture, CLASS_NAMES[k], (BARS_LEFT + 42, y + 26), 0.65, bold=row == 0)
        p = float(reading.probabilities[k])
        for (width, colour) in ((bar_width, (70, 70, 70)), (round(bar_width * p), BAR)):
            cv2.rectangle(picture, (bar_left, y + 10), (bar_left + width, y + 30), colour, -1)
        _text(picture, f"{p:.0%}", (bar_left + bar_width + 6, y + 26))

    maps = feature_map_grid(reading.maps)
    picture[MAPS_TOP:MAPS_TOP + maps.shape[0], SIDE_LEFT:SIDE_LEFT + maps.shape[1]] = maps
    return picture


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
    grid[:] = BACKGROUND
    grid[:, :MAP_SIZE, :, :MAP_SIZE] = tiles.transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * (MAP_SIZE + gap), columns * (MAP_SIZE + gap), 3)[:-gap, :-gap]


class DrawingSession:
    """The window's state: the canvas, the model's latest reading and the
    picture.  Mouse positions are in window-picture coordinates."""

    def __init__(self, model, device, references, glyph_masks=None, drawings=None,
                 log=print, clock=time.monotonic):
        (self.model, self.device, self.log, self.clock) = (model, device, log, clock)
        (self.references, self.glyph_masks) = (references, glyph_masks)
        self.drawings = drawings or DrawingFolder("drawings", log)
        (self.canvas, self.reading) = (Canvas(), Reading())
        self.drawing = False  # a stroke is being drawn
        self._background = background(references, glyph_masks)
        self._picture = None  # None: to be composed again
        self._stale = False  # the drawing changed since it was last read
        self._last_read = float("-inf")

    def press(self, x, y):
        (x, y) = (x - MARGIN, y - CANVAS_TOP)
        if 0 <= x < CANVAS_SIZE and 0 <= y < CANVAS_SIZE:  # strokes start on the paper
            self.canvas.strokes.append([self.canvas.inside(x, y)])
            (self.drawing, self._stale, self._picture) = (True, True, None)

    def drag(self, x, y):
        if self.drawing:
            self.canvas.strokes[-1].append(self.canvas.inside(x - MARGIN, y - CANVAS_TOP))
            (self._stale, self._picture) = (True, None)

    def release(self):
        if self.drawing:
            self.drawing = False
            self._read(report=True)

    def key(self, char):
        """Handle a key; returns False when the session should end."""
        if char in ("q", "\x1b"):
            return False
        self.drawing = False
        if char == "c":
            self.canvas.strokes.clear()
            self._read(report=False)
        elif char == "z" and self.canvas.strokes:
            self.canvas.strokes.pop()
            self._read(report=True)
        elif char == "s":
            self.save()
        return True

    def save(self):
        if not self.canvas.strokes:
            self.log("[INFO] nothing to save: the canvas is empty")
            return None
        try:
            return self.drawings.save(self.canvas)
        except NotSaved as reason:
            self.log(f"[ERROR] the drawing was not saved: {reason}")
            return None

    def _read(self, report):
        self.reading = read_drawing(self.model, self.canvas.image(), self.device)
        (self._last_read, self._stale, self._picture) = (self.clock(), False, None)
        if report and not self.reading.empty:
            self.log(self.reading.console_line())

    def update(self):
        """Re-read a drawing in progress, at most every LIVE_INTERVAL seconds;
        True if the picture changed."""
        if self._stale and self.clock() - self._last_read >= LIVE_INTERVAL:
            self._read(report=False)
        return self._picture is None

    def picture(self):
        """The window's picture for the current state."""
        if self._picture is None:
            self._picture = compose(self.canvas.image(), self.reading, self.references,
                                    self.glyph_masks, base=self._background)
        return self._picture
