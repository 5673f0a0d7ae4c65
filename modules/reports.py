"""The pictures and reports train.py and predict.py write.

Each picture is a matplotlib ``Figure`` drawn straight to a file: no pyplot,
no window and no backend to switch, so importing this module changes nothing
for the rest of the process (a program that also shows matplotlib windows
keeps them).  Styles apply to one figure at a time, through style.context.

Beside the model file, train.py writes the reports on what the network
learned and got wrong:

    confusion_matrix.png  true against predicted class on the test set
    mistakes.png          the 25 most confident mistakes
    filters.png           conv1's filters, conv1's and conv2's feature maps
    metrics.json          history, test accuracy, confusion matrix, options, times
"""

import json
import os
import time

import numpy as np
import torch
from matplotlib import style
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

from modules.checkpoint import versions
from modules.classify import feature_maps
from modules.cli import atomic_output
from modules.data import CLASS_NAMES, HIRAGANA
from modules.glyphs import GLYPH_HINT, class_labels, hiragana_font


CORRECT_COLOR = "#1a9e1a"  # green, like the tutorial's text on a right guess
WRONG_COLOR = "#d62020"  # red for a wrong one


def _save(fig, path, dpi=100):
    """Write ``fig`` to ``path`` atomically (never half a file)."""
    with atomic_output(path) as tmp_path:
        fig.savefig(tmp_path, dpi=dpi)


def save_training_plot(history, path):
    """The tutorial's figure: train/val loss and accuracy per epoch."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    with style.context("ggplot"):  # the tutorial's look, for this figure only
        fig = Figure(figsize=(8, 5))
        ax = fig.subplots()
        # a marker on every epoch's point: one epoch has no line to draw
        for name in ("train_loss", "val_loss", "train_acc", "val_acc"):
            ax.plot(epochs, history[name], label=name, marker="o", markersize=4)
        if len(epochs) == 1:  # else the axis spans 0.945-1.05
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
        ax.set_title("Training Loss and Accuracy on Dataset")
        ax.set_xlabel("Epoch #")
        ax.set_ylabel("Loss/Accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
        fig.tight_layout()
        _save(fig, path)


def save_confusion_matrix(matrix, path):
    """scikit-learn's ConfusionMatrixDisplay, with hiragana where a font has them."""
    font = hiragana_font()
    labels = class_labels(with_glyphs=font is not None)
    fig = Figure(figsize=(8.5, 7.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=labels).plot(
        ax=ax, cmap="Blues", colorbar=True, values_format="d")
    if font is not None:
        for tick in ax.get_xticklabels() + ax.get_yticklabels():
            tick.set_fontproperties(font)
    ax.set_title("KMNIST test set: true class (rows) vs predicted class (columns)")
    fig.tight_layout()
    _save(fig, path)


def save_prediction_grid(panels, path, title):
    """A grid of 28x28 images, each with its caption and caption colour.

    ``panels`` is a list of (image as a 2-D array in [0, 1], caption, colour).
    Captions may hold hiragana: they are drawn with a CJK font when one exists.
    """
    font = hiragana_font()
    columns = min(5, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(2.3 * columns, 2.6 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, caption, colour) in zip(axes.flat, panels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(caption, color=colour, fontsize=10, fontproperties=font)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def most_confident_mistakes(targets, log_probs, count=25):
    """Indices of the wrongly classified images, the most confident first."""
    probs = np.exp(np.asarray(log_probs, dtype=np.float64))
    wrong = np.flatnonzero(probs.argmax(1) != np.asarray(targets))
    return wrong[np.argsort(-probs[wrong].max(1), kind="stable")][:count]


def save_mistakes(images, targets, log_probs, path, count=25):
    """The ``count`` test images the model got wrong with the highest confidence.

    ``images`` are the N x 28 x 28 test images (uint8), ``targets`` their
    labels and ``log_probs`` the model's N x 10 log-probabilities.  Each panel
    shows the true class, the predicted one and how sure the model was.
    """
    probs = np.exp(np.asarray(log_probs, dtype=np.float64))
    wrong = most_confident_mistakes(targets, log_probs, count=len(probs))
    (worst, wrong_count) = (wrong[:count], len(wrong))
    labels = class_labels(with_glyphs=hiragana_font() is not None)
    panels = [(np.asarray(images[i]) / 255.0,
               f"true {labels[targets[i]]}\npred {labels[probs[i].argmax()]} {probs[i].max():.0%}",
               WRONG_COLOR) for i in worst]
    title = (f"The {len(worst)} most confident of {wrong_count} mistakes on "
             f"{len(probs):,} test images")
    if panels:
        save_prediction_grid(panels, path, title)
        return
    fig = Figure(figsize=(8, 4))
    fig.text(0.5, 0.5, f"No mistakes: all {len(probs):,} test images\nwere classified right",
             ha="center", va="center", fontsize=20, color=CORRECT_COLOR)
    _save(fig, path)


def save_filters(model, image, path):
    """conv1's 20 learned 5x5 filters, and the 20 conv1 and 50 conv2 feature
    maps (after ReLU) of one image, as one picture."""
    weights = model.conv1.weight.detach().float().cpu()[:, 0].numpy()  # 20 x 5 x 5
    x = torch.as_tensor(image, dtype=torch.float32).view(1, 1, 28, 28)
    device = next(model.parameters()).device
    (first, second) = feature_maps(model.eval(), x.to(device))
    fig = Figure(figsize=(12, 11.5))
    (top, middle, bottom) = fig.subfigures(3, 1, height_ratios=[2.3, 2.4, 5.2])

    # the filters share one colour scale centred on zero: red adds, blue subtracts
    axes = top.subplots(2, 11)
    limit = np.abs(weights).max()
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("input", fontsize=9)
    for k, w in enumerate(weights):
        ax = axes[k // 10, 1 + k % 10]
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"{k + 1}", fontsize=8)
    top.suptitle("conv1: the 20 learned 5x5 filters (red: ink there raises the response, "
                 "blue: lowers it)", fontsize=11)

    for (subfig, maps, columns, name) in ((middle, first[0], 10, "conv1's 20 maps, 24x24"),
                                          (bottom, second[0], 10, "conv2's 50 maps, 8x8")):
        axes = subfig.subplots(-(-len(maps) // columns), columns)
        for ax, fmap in zip(axes.flat, maps.numpy()):
            ax.imshow(fmap, cmap="magma", vmin=0, vmax=max(float(maps.max()), 1e-6),
                      interpolation="nearest")
            ax.axis("off")
        subfig.suptitle(f"Feature maps of the input: {name} (after ReLU; bright = strong "
                        "response)",
                        fontsize=11)
    _save(fig, path, dpi=80)


def report_paths(model_path):
    """Where the reports of a model saved at ``model_path`` go (beside it)."""
    folder = os.path.dirname(model_path)
    return {name: os.path.join(folder, name) for name in
            ("confusion_matrix.png", "mistakes.png", "filters.png", "metrics.json")}


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


def save_reports(model, options, history, test, run):
    """Write every report beside the model file, and say where all went.

    ``test`` holds the test set's ``images`` (N x 28 x 28 uint8), ``targets``,
    the model's ``log_probs``, ``loss`` and ``accuracy``; ``run`` holds
    ``train_samples``, ``val_samples``, ``train_seconds``, ``start_time``,
    ``device`` and ``precision``.
    """
    paths = report_paths(options["model"])
    targets = test["targets"].numpy()
    matrix = confusion_matrix(targets, test["log_probs"].argmax(1).numpy(),
                              labels=range(len(CLASS_NAMES)))
    print_confused_pairs(matrix)

    # the pictures: which classes get mixed up, the worst mistakes, and what
    # the first layers learned (shown on the first test image)
    save_confusion_matrix(matrix, paths["confusion_matrix.png"])
    save_mistakes(test["images"], targets, test["log_probs"].numpy(), paths["mistakes.png"])
    save_filters(model, test["images"][0].float().numpy() / 255, paths["filters.png"])
    if hiragana_font() is None:
        print(GLYPH_HINT)

    metrics = {
        "history": history,
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "confusion_matrix": matrix.tolist(),
        "class_names": list(CLASS_NAMES),
        "options": options,
        "train_samples": run["train_samples"],
        "val_samples": run["val_samples"],
        "train_seconds": round(run["train_seconds"], 3),
        "wall_seconds": round(time.time() - run["start_time"], 3),
        "device": run["device"],
        "precision": run["precision"],
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
    }
    with atomic_output(paths["metrics.json"]) as tmp_path, open(tmp_path, "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"[INFO] saved the model to {options['model']}, the plot to {options['plot']}, "
          f"the confusion matrix to {paths['confusion_matrix.png']}, the worst mistakes to "
          f"{paths['mistakes.png']}, the filters and feature maps to {paths['filters.png']} "
          f"and metrics to {paths['metrics.json']}")
