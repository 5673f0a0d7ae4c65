"""Draw a character and watch LeNet read it: everything but the window.

``Canvas`` keeps the strokes drawn so far (for undo) and renders them as a
black-on-white picture, like ink on paper.  ``DrawingSession`` feeds that
picture through exactly the preprocessing of ``predict.py --image``
(``modules/images.py``) and the model, and composes the window's picture:
the canvas, the 28x28 image the network receives, the top 3 classes as
bars, conv1's feature maps, a reference strip of the ten classes and the
keys.  All of it works on NumPy images, so it is tested without a display;
``modules/display.py`` only forwards mouse events and keys to it.
"""

import os
import time

import cv2
import numpy as np
import torch

from modules.classify import class_probabilities, describe_top, feature_maps, top_classes
from modules.data import CLASS_NAMES
from modules.images import ImageProblem, to_kmnist_input

CANVAS_SIZE = 336  # screen pixels, 12 x 28
# KMNIST's strokes are about 2.2 pixels wide on a character 26 pixels tall
# (measured on the test set); a character drawn over three quarters of the
# canvas is shrunk about tenfold, so this brush gives the same stroke width
BRUSH_WIDTH = round(2.2 / 26 * 0.75 * CANVAS_SIZE)
# while the mouse moves, read the drawing at most this often (seconds)
LIVE_INTERVAL = 0.08

# the window's picture (BGR): a dark background, so the paper stands out
BACKGROUND = (40, 40, 40)
PAPER_BORDER = (0, 200, 255)
TEXT = (235, 235, 235)
DIM_TEXT = (160, 160, 160)
BAR = (80, 200, 80)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MARGIN = 16
CANVAS_TOP = 44
SIDE_LEFT = MARGIN + CANVAS_SIZE + 28
INSET_SCALE = 6  # the 28x28 input shown at 168x168
MAP_SIZE = 48  # each 24x24 conv1 feature map shown at 48x48
REFERENCE_TOP = CANVAS_TOP + CANVAS_SIZE + 34
REFERENCE_CELL = 84
INSET = 28 * INSET_SCALE
INSET_TOP = CANVAS_TOP + 14
BARS_LEFT = SIDE_LEFT + INSET + 24
MAPS_TOP = INSET_TOP + INSET + 34
WIDTH = SIDE_LEFT + 10 * (MAP_SIZE + 4) + MARGIN
HEIGHT = REFERENCE_TOP + 60 + 48 + 34
KEYS = "left mouse: draw    z: undo    c: clear    s: save drawing    q / Esc: quit"


class Canvas:
    """White paper with black strokes; each stroke is a list of (x, y) points."""

    def __init__(self, size=CANVAS_SIZE, brush=BRUSH_WIDTH):
        self.size = size
        self.brush = brush
        self.strokes = []
        self._drawing = False

    @property
    def is_empty(self):
        return not self.strokes

    def _inside(self, x, y):
        return (min(max(int(x), 0), self.size - 1), min(max(int(y), 0), self.size - 1))

    def add_stroke(self, points):
        """Add a whole finished stroke, a list of (x, y) points (the browser
        page sends its strokes this way)."""
        self.strokes.append([self._inside(x, y) for (x, y) in points])

    def start_stroke(self, x, y):
        self.strokes.append([self._inside(x, y)])
        self._drawing = True

    def extend_stroke(self, x, y):
        """Add a point to the stroke being drawn (joined to the last by a line)."""
        if self._drawing:
            self.strokes[-1].append(self._inside(x, y))

    def end_stroke(self):
        """Finish the stroke being drawn; True if there was one."""
        finished, self._drawing = self._drawing, False
        return finished

    @property
    def drawing(self):
        return self._drawing

    def undo(self):
        """Remove the last stroke; True if there was one."""
        self._drawing = False
        if not self.strokes:
            return False
        self.strokes.pop()
        return True

    def clear(self):
        self.strokes = []
        self._drawing = False

    def image(self):
        """The drawing as a ``size`` x ``size`` uint8 picture, black ink on white."""
        paper = np.full((self.size, self.size), 255, np.uint8)
        for stroke in self.strokes:
            points = np.array(stroke, np.int32)
            # round brush: lines between successive points with round ends
            # (a single click leaves a dot)
            cv2.polylines(paper, [points], False, 0, self.brush, cv2.LINE_AA)
            cv2.circle(paper, stroke[0], self.brush // 2, 0, -1, cv2.LINE_AA)
            cv2.circle(paper, stroke[-1], self.brush // 2, 0, -1, cv2.LINE_AA)
        return paper

    def save(self, folder):
        """Write the drawing as a PNG (black on white) into ``folder``; its path.

        Files are numbered (drawing-001.png, ...) and never overwritten: each
        name is claimed with an exclusive create, so two saves at the same
        moment (two browser tabs) get two files.
        """
        (encoded, png) = cv2.imencode(".png", self.image())
        if not encoded:
            raise OSError("OpenCV could not encode the drawing as PNG")
        os.makedirs(folder, exist_ok=True)
        number = 1
        while True:
            path = os.path.join(folder, f"drawing-{number:03d}.png")
            try:
                with open(path, "xb") as f:
                    f.write(png.tobytes())
                return path
            except FileExistsError:
                number += 1


class Reading:
    """What the model made of one drawing (all None for an empty canvas)."""

    def __init__(self, character=None, probabilities=None, maps=None):
        self.character = character  # the 28x28 input in [0, 1]
        self.probabilities = probabilities  # 10 class probabilities
        self.maps = maps  # conv1's 20 feature maps, 24x24 each

    @property
    def empty(self):
        return self.probabilities is None


def read_drawing(model, picture, device):
    """Preprocess ``picture`` as ``--image`` does, then classify it."""
    try:
        character = to_kmnist_input(picture)
    except ImageProblem:  # nothing drawn (or nothing that stands out)
        return Reading()
    probabilities = class_probabilities(model, character, device)
    x = torch.as_tensor(character)[None, None].to(device)
    (first, _) = feature_maps(model, x)
    return Reading(character, probabilities, first[0].numpy())


def reference_images(test_data=None, glyph_masks=None, size=48):
    """One picture per class for the reference strip: a real test image where
    the data set is at hand, else the printed glyph, else None (romaji only)."""
    if test_data is not None:
        images, labels = test_data.data.numpy(), test_data.targets.numpy()
        firsts = [np.flatnonzero(labels == k) for k in range(len(CLASS_NAMES))]
        if all(len(f) for f in firsts):
            return [cv2.resize(images[f[0]], (size, size), interpolation=cv2.INTER_NEAREST)
                    for f in firsts]
    if glyph_masks is not None:
        return [cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
                for mask in glyph_masks]
    return [None] * len(CLASS_NAMES)


def _text(picture, text, origin, scale=0.5, color=TEXT, thickness=1):
    cv2.putText(picture, text, origin, FONT, scale, color, thickness, cv2.LINE_AA)


def _paste_mask(picture, mask, top, left, color=TEXT):
    """Blend a uint8 mask (255 = ink) into ``picture`` in ``color``."""
    (h, w) = mask.shape
    region = picture[top:top + h, left:left + w].astype(np.float32)
    alpha = (mask.astype(np.float32) / 255)[..., None]
    picture[top:top + h, left:left + w] = (region * (1 - alpha)
                                           + np.array(color, np.float32) * alpha).astype(np.uint8)


def background(references, glyph_masks=None):
    """The parts of the window's picture that never change: title, frames,
    labels, the reference strip of the ten classes and the keys."""
    picture = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    picture[:] = BACKGROUND
    _text(picture, "Draw one hiragana character: LeNet reads it as you draw", (MARGIN, 28),
          0.65, TEXT, 1)
    # the paper's coloured frame
    size = CANVAS_SIZE
    cv2.rectangle(picture, (MARGIN - 3, CANVAS_TOP - 3),
                  (MARGIN + size + 2, CANVAS_TOP + size + 2), PAPER_BORDER, 3)
    _text(picture, "what LeNet sees (28x28)", (SIDE_LEFT, CANVAS_TOP + 4), 0.5, DIM_TEXT)
    cv2.rectangle(picture, (SIDE_LEFT - 1, INSET_TOP - 1), (SIDE_LEFT + INSET, INSET_TOP + INSET),
                  DIM_TEXT, 1)
    _text(picture, "top 3", (BARS_LEFT, CANVAS_TOP + 4), 0.5, DIM_TEXT)
    _text(picture, "conv1: the 20 feature maps of this drawing (bright = strong response)",
          (SIDE_LEFT, MAPS_TOP - 10), 0.45, DIM_TEXT)

    # the reference strip: what each class looks like
    _text(picture, "The ten classes: draw one of these", (MARGIN, REFERENCE_TOP - 10), 0.5,
          DIM_TEXT)
    for k, name in enumerate(CLASS_NAMES):
        x = MARGIN + k * REFERENCE_CELL
        image = references[k]
        if image is not None:
            (h, w) = image.shape
            picture[REFERENCE_TOP:REFERENCE_TOP + h, x:x + w] = image[..., None]
        _text(picture, name, (x, REFERENCE_TOP + 68), 0.5, TEXT)
        if glyph_masks is not None:  # the printed character beside its name
            _paste_mask(picture, cv2.resize(glyph_masks[k], (22, 22), interpolation=cv2.INTER_AREA),
                        REFERENCE_TOP + 52, x + 34)

    _text(picture, KEYS, (MARGIN, HEIGHT - 14), 0.5, PAPER_BORDER)
    return picture


def compose(canvas_image, reading, references, glyph_masks=None, base=None):
    """The window's whole picture (BGR uint8, HEIGHT x WIDTH); ``base`` is
    ``background(references, glyph_masks)``, made once by the caller that
    composes many pictures."""
    picture = (background(references, glyph_masks) if base is None else base).copy()

    # the paper
    size = canvas_image.shape[0]
    picture[CANVAS_TOP:CANVAS_TOP + size, MARGIN:MARGIN + size] = canvas_image[..., None]

    if reading.empty:
        for row in range(3):
            _text(picture, "-", (BARS_LEFT, INSET_TOP + 32 + row * 54), 0.6, DIM_TEXT)
        _text(picture, "(draw something)", (SIDE_LEFT, MAPS_TOP + 30), 0.5, DIM_TEXT)
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
            _paste_mask(picture, cv2.resize(glyph_masks[k], (36, 36),
                                            interpolation=cv2.INTER_AREA), y, BARS_LEFT)
        _text(picture, CLASS_NAMES[k], (BARS_LEFT + 42, y + 26), 0.65, TEXT, 2 if row == 0 else 1)
        p = float(reading.probabilities[k])
        cv2.rectangle(picture, (bar_left, y + 10), (bar_left + bar_width, y + 30), (70, 70, 70), -1)
        cv2.rectangle(picture, (bar_left, y + 10), (bar_left + round(bar_width * p), y + 30), BAR,
                      -1)
        _text(picture, f"{p:.0%}", (bar_left + bar_width + 6, y + 26), 0.5, TEXT)

    # conv1's 20 feature maps, what the first layer responds to
    maps = feature_map_grid(reading.maps)
    picture[MAPS_TOP:MAPS_TOP + maps.shape[0], SIDE_LEFT:SIDE_LEFT + maps.shape[1]] = maps
    return picture


def feature_map_grid(maps, columns=10, gap=4):
    """conv1's feature maps as one BGR picture: each map enlarged to MAP_SIZE,
    all on one brightness scale, coloured with magma (bright = strong
    response), in rows of ``columns`` with ``gap`` pixels of BACKGROUND."""
    scale = max(float(maps.max()), 1e-6)
    # stacked, so that they are coloured in one call
    stack = np.vstack([cv2.resize((np.clip(fmap / scale, 0, 1) * 255).astype(np.uint8),
                                  (MAP_SIZE, MAP_SIZE), interpolation=cv2.INTER_NEAREST)
                       for fmap in maps])
    tiles = cv2.applyColorMap(stack, cv2.COLORMAP_MAGMA).reshape(-1, MAP_SIZE, MAP_SIZE, 3)
    rows = -(-len(tiles) // columns)
    grid = np.empty((rows * (MAP_SIZE + gap) - gap, columns * (MAP_SIZE + gap) - gap, 3),
                    np.uint8)
    grid[:] = BACKGROUND
    for k, tile in enumerate(tiles):
        (row, col) = divmod(k, columns)
        y, x = row * (MAP_SIZE + gap), col * (MAP_SIZE + gap)
        grid[y:y + MAP_SIZE, x:x + MAP_SIZE] = tile
    return grid


def canvas_origin():
    """Where the paper's top-left pixel lies in the window's picture (x, y)."""
    return (MARGIN, CANVAS_TOP)


class DrawingSession:
    """The canvas, the model's latest reading and the window's picture.

    Mouse positions are in window-picture coordinates; ``log`` prints the
    console lines (``print`` by default).
    """

    def __init__(self, model, device, references, glyph_masks=None, save_folder="drawings",
                 log=print, clock=time.monotonic):
        self.model = model
        self.device = device
        self.references = references
        self.glyph_masks = glyph_masks
        self.save_folder = save_folder
        self.log = log
        self.clock = clock
        self.canvas = Canvas()
        self.reading = Reading()
        self._background = background(references, glyph_masks)
        self._picture = None  # None: the window's picture must be composed again
        self._stale = False  # the drawing changed since it was last read
        self._last_read = float("-inf")

    # --- input --------------------------------------------------------------
    def _to_canvas(self, x, y):
        (left, top) = canvas_origin()
        return (x - left, y - top)

    def _on_paper(self, x, y):
        (cx, cy) = self._to_canvas(x, y)
        return 0 <= cx < self.canvas.size and 0 <= cy < self.canvas.size

    def press(self, x, y):
        if self._on_paper(x, y):
            self.canvas.start_stroke(*self._to_canvas(x, y))
            self._stale, self._picture = True, None

    def drag(self, x, y):
        if self.canvas.drawing:
            self.canvas.extend_stroke(*self._to_canvas(x, y))
            self._stale, self._picture = True, None

    def release(self):
        if self.canvas.end_stroke():
            self._read(report=True)

    def key(self, char):
        """Handle a key; returns False when the session should end."""
        if char in ("q", "\x1b"):
            return False
        if char == "c":
            self.canvas.clear()
            self._read(report=False)
        elif char == "z" and self.canvas.undo():
            self._read(report=True)
        elif char == "s":
            self.save()
        return True

    def save(self):
        if self.canvas.is_empty:
            self.log("[INFO] nothing to save: the canvas is empty")
            return None
        try:
            path = self.canvas.save(self.save_folder)
        except OSError as error:
            self.log(f"[ERROR] could not save the drawing: {error}")
            return None
        self.log(f"[INFO] saved the drawing to {path} "
                 f"(classify it again with: python predict.py --image {path})")
        return path

    # --- output -------------------------------------------------------------
    def _read(self, report):
        self.reading = read_drawing(self.model, self.canvas.image(), self.device)
        self._last_read = self.clock()
        self._stale = False
        self._picture = None
        if report and not self.reading.empty:
            self.log(f"[INFO] drawing: {describe_top(self.reading.probabilities)}")

    def update(self):
        """Re-read a drawing in progress, at most every LIVE_INTERVAL seconds;
        True if the picture changed."""
        if self._stale and self.clock() - self._last_read >= LIVE_INTERVAL:
            self._read(report=False)
        return self._picture is None

    def picture(self):
        """The window's picture for the current state (composed again only
        after a stroke moved or the reading changed)."""
        if self._picture is None:
            self._picture = compose(self.canvas.image(), self.reading, self.references,
                                    self.glyph_masks, base=self._background)
        return self._picture
