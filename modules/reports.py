"""The pictures and reports train.py and predict.py write: the tutorial's
plot, and beside the model the confusion matrix, the 25 most confident
mistakes, conv1's filters with both layers' feature maps, and metrics.json.
Each picture is a matplotlib ``Figure`` drawn straight to a file: no pyplot,
no window, no backend switched for the rest of the process.
"""

import json
import os
import platform

import numpy as np
import torch
from torch.nn import functional as F
from matplotlib import style
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from modules.classify import feature_maps
from modules.data import CLASS_NAMES, HIRAGANA
from modules.glyphs import GLYPH_HINT, class_labels, hiragana_font

# a right guess green and a wrong one red, as the tutorial writes them; own images yellow
COLOURS = {"right": "#1a9e1a", "wrong": "#d62020", "own": "#e0b000"}
# the files beside the model: the reports, and the weights of each epoch (train.py's)
REPORTS = ("confusion_matrix.png", "mistakes.png", "filters.png", "metrics.json", "epochs.pth")


def versions():
    """The library versions a model was trained with, for metrics.json."""
    import torchvision  # only here: predict.py --image never needs it (1.5 s to import)

    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def report_paths(model_path):
    """Where the files of a model saved at ``model_path`` go (beside it)."""
    return {name: os.path.join(os.path.dirname(model_path), name) for name in REPORTS}


def save_training_plot(history, path):
    """The tutorial's figure: train/val loss and accuracy per epoch."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    with style.context("ggplot"):  # the tutorial's look, for this figure only
        fig = Figure(figsize=(8, 5))
        ax = fig.subplots()
        for name in ("train_loss", "val_loss", "train_acc", "val_acc"):
            # a marker on every point: one epoch has no line to draw
            ax.plot(epochs, history[name], label=name, marker="o", markersize=4)
        ax.set_xlim(0.5, len(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_title("Training Loss and Accuracy on Dataset")
        ax.set_xlabel("Epoch #")
        ax.set_ylabel("Loss/Accuracy")
        ax.legend(loc="best")
        fig.tight_layout()
        fig.savefig(path, dpi=100)


def save_confusion_matrix(matrix, path):
    """scikit-learn's ConfusionMatrixDisplay, with hiragana where a font has them."""
    from sklearn.metrics import ConfusionMatrixDisplay  # (train.py's only: 1 s to import)

    font = hiragana_font()
    fig = Figure(figsize=(8.5, 7.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=class_labels(font is not None)).plot(
        ax=ax, cmap="Blues", colorbar=True, values_format="d")
    for tick in (ax.get_xticklabels() + ax.get_yticklabels()) if font else ():
        tick.set_fontproperties(font)
    ax.set_title("KMNIST test set: true class (rows) vs predicted class (columns)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def tiles(fig, left, top, images, columns, cell, size, captions=(), **imshow):
    """Draw ``images`` in rows of ``columns`` on one axes whose units are
    inches, its top-left corner ``left``, ``top`` inches from the figure's:
    each in a ``cell`` (width, height) with the image ``size`` inches square
    at its bottom and its caption, a (text, colour) pair, above it.  One axes,
    not one per image: matplotlib spends about 20 ms setting up each axes."""
    (width, height) = cell
    (rows, (figure_width, figure_height)) = (-(-len(images) // columns), fig.get_size_inches())
    ax = fig.add_axes((left / figure_width, 1 - (top + rows * height) / figure_height,
                       columns * width / figure_width, rows * height / figure_height))
    for (k, image) in enumerate(images):
        (row, column) = divmod(k, columns)
        (x, y) = (column * width + (width - size) / 2, (row + 1) * height)
        ax.imshow(image, extent=(x, x + size, y, y - size), interpolation="nearest", **imshow)
    for (k, (text, colour)) in enumerate(captions[:len(images)]):
        (row, column) = divmod(k, columns)
        ax.text((column + 0.5) * width, (row + 1) * height - size - 0.04, text, color=colour,
                ha="center", va="bottom", fontsize=10, fontproperties=hiragana_font())
    ax.set(xlim=(0, columns * width), ylim=(rows * height, 0), aspect="auto")
    ax.axis("off")


def save_prediction_grid(panels, path, title):
    """A grid of 28x28 images: ``panels`` is a list of (2-D image in [0, 1],
    caption, caption colour); captions may hold hiragana."""
    columns = min(5, len(panels))
    rows = -(-len(panels) // columns)
    # inches: a panel, and the title above them all (on two lines above one panel)
    (cell, top) = ((2.3, 2.6), 0.4 if columns > 1 else 0.8)
    fig = Figure(figsize=(cell[0] * columns, cell[1] * rows + top))
    tiles(fig, 0, top, [image for (image, _, _) in panels], columns, cell, 2.0,
          [(caption, colour) for (_, caption, colour) in panels], cmap="gray", vmin=0, vmax=1)
    fig.text(0.5, 1 - top / 2 / fig.get_size_inches()[1], title, ha="center", va="center",
             fontsize=12, wrap=True)
    fig.savefig(path, dpi=100)


def most_confident_mistakes(targets, probs):
    """Indices of the wrongly classified images, the most confident first."""
    wrong = np.flatnonzero(probs.argmax(1) != np.asarray(targets))
    return wrong[np.argsort(-probs[wrong].max(1), kind="stable")]


def save_mistakes(images, targets, probs, path, count=25):
    """The ``count`` test images the model got wrong with the highest confidence,
    each with its true class, the predicted one and how sure the model was."""
    wrong = most_confident_mistakes(targets, probs)
    labels = class_labels(hiragana_font() is not None)
    panels = [(images[i] / 255.0,
               f"true {labels[targets[i]]}\npred {labels[probs[i].argmax()]} {probs[i].max():.0%}",
               COLOURS["wrong"]) for i in wrong[:count]]
    if panels:
        save_prediction_grid(panels, path, f"The {len(panels)} most confident of {len(wrong)} "
                                           f"mistakes on {len(probs):,} test images")
        return
    fig = Figure(figsize=(8, 4))
    fig.text(0.5, 0.5, f"No mistakes: all {len(probs):,} test images\nwere classified right",
             ha="center", va="center", fontsize=20, color=COLOURS["right"])
    fig.savefig(path, dpi=100)


def save_filters(model, image, label, path):
    """conv1's 20 learned 5x5 filters, and the 20 conv1 and 50 conv2 feature
    maps (after ReLU) of one ``image`` of class ``label``, numbered alike."""
    weights = model.conv1.weight.detach().float().cpu()[:, 0].numpy()  # 20 x 5 x 5
    x = torch.as_tensor(image, dtype=torch.float32).view(1, 1, 28, 28)
    (first, second) = feature_maps(model.eval(), x.to(next(model.parameters()).device))
    fig = Figure(figsize=(12, 11.5))
    numbers = [(f"{k + 1}", "black") for k in range(50)]

    # the input, then the filters on one colour scale centred on zero: red adds, blue subtracts
    fig.text(0.5, 1 - 0.25 / 11.5, "conv1: the 20 learned 5x5 filters (red: ink there raises "
             "the response, blue: lowers it)", ha="center", va="center", fontsize=11)
    tiles(fig, 0.3, 0.45, [image], 1, (1.3, 1.0), 0.75,
          [(f"input: {class_labels(hiragana_font() is not None)[label]}", "black")],
          cmap="gray", vmin=0, vmax=1)
    limit = np.abs(weights).max()
    tiles(fig, 1.6, 0.45, weights, 10, (1.0, 1.0), 0.75, numbers, cmap="RdBu_r",
          vmin=-limit, vmax=limit)
    for (top, maps, name) in ((3.1, first[0], "conv1's 20 maps, 24x24, one per filter"),
                              (5.9, second[0], "conv2's 50 maps, 8x8")):
        fig.text(0.5, 1 - (top - 0.3) / 11.5, f"Feature maps of the input: {name} (after ReLU; "
                 "bright = strong response)", ha="center", va="center", fontsize=11)
        tiles(fig, 0.5, top, maps.numpy(), 10, (1.1, 1.1), 0.85, numbers, cmap="magma", vmin=0,
              vmax=max(float(maps.max()), 1e-6))
    fig.savefig(path, dpi=80)


def print_confused_pairs(matrix, count=3):
    """The ``count`` pairs of classes mistaken for each other most often, either way."""
    n = len(CLASS_NAMES)
    pairs = sorted(((matrix[i, j] + matrix[j, i], i, j) for i in range(n)
                    for j in range(i + 1, n)), reverse=True)
    pairs = [pair for pair in pairs[:count] if pair[0] > 0]
    print("[INFO] most confused pairs (test images mistaken either way):"
          + ("" if pairs else " none, every test image was classified right"))
    for (total, i, j) in pairs:
        print(f"    {CLASS_NAMES[i]} ({HIRAGANA[i]}) <-> {CLASS_NAMES[j]} ({HIRAGANA[j]}): "
              f"{total} ({matrix[i, j]} {CLASS_NAMES[i]} as {CLASS_NAMES[j]}, "
              f"{matrix[j, i]} {CLASS_NAMES[j]} as {CLASS_NAMES[i]})")


def save_reports(outputs, model, model_path, test_data, log_probs, run):
    """Write the four reports beside ``model_path`` through ``outputs`` (an
    OutputSet): ``test_data`` is torchvision's KMNIST test split, ``log_probs``
    the model's N x 10 answers; metrics.json gets ``run`` (history, options,
    sample counts, times, device, test accuracy) and the test loss."""
    from sklearn.metrics import confusion_matrix  # (predict.py never needs scikit-learn)

    (images, targets) = (test_data.data, test_data.targets)
    paths = report_paths(model_path)
    (labels, probs) = (targets.numpy(), np.exp(log_probs.double().numpy()))
    matrix = confusion_matrix(labels, probs.argmax(1), labels=range(len(CLASS_NAMES)))
    print_confused_pairs(matrix)
    save_confusion_matrix(matrix, outputs.path(paths["confusion_matrix.png"]))
    save_mistakes(images.numpy(), labels, probs, outputs.path(paths["mistakes.png"]))
    # what the first layers learned, shown on the first test image
    save_filters(model, images[0].float().numpy() / 255, int(labels[0]),
                 outputs.path(paths["filters.png"]))
    if hiragana_font() is None:
        print(GLYPH_HINT)
    metrics = {**run, "test_loss": F.nll_loss(log_probs, targets).item(),
               "class_names": list(CLASS_NAMES), "confusion_matrix": matrix.tolist(),
               "torch_threads": torch.get_num_threads(), "versions": versions()}
    with open(outputs.path(paths["metrics.json"]), "w") as f:
        json.dump(metrics, f, indent=2)
    return paths
