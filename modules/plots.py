"""Pictures written by train.py and predict.py (matplotlib, no window needed)."""

import matplotlib

matplotlib.use("Agg")  # draw to files; predict.py opens its own OpenCV window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from modules.glyphs import class_labels, hiragana_font  # noqa: E402
from modules.paths import atomic_output  # noqa: E402

CORRECT_COLOR = "#1a9e1a"  # green, like the tutorial's text on a right guess
WRONG_COLOR = "#d62020"  # red for a wrong one


def save_training_plot(H, path):
    """The tutorial's figure: train/val loss and accuracy per epoch."""
    epochs = np.arange(1, len(H["train_loss"]) + 1)
    plt.style.use("ggplot")
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(epochs, H["train_loss"], label="train_loss")
    ax.plot(epochs, H["val_loss"], label="val_loss")
    ax.plot(epochs, H["train_acc"], label="train_acc")
    ax.plot(epochs, H["val_acc"], label="val_acc")
    ax.set_title("Training Loss and Accuracy on Dataset")
    ax.set_xlabel("Epoch #")
    ax.set_ylabel("Loss/Accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_output(path) as tmp_path:
        fig.savefig(tmp_path, dpi=100)
    plt.close(fig)


def save_confusion_matrix(matrix, path):
    """scikit-learn's ConfusionMatrixDisplay, with hiragana where a font has them."""
    from sklearn.metrics import ConfusionMatrixDisplay

    font = hiragana_font()
    labels = class_labels(with_glyphs=font is not None)
    plt.style.use("default")
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=labels).plot(
        ax=ax, cmap="Blues", colorbar=True, values_format="d")
    if font is not None:
        for tick in ax.get_xticklabels() + ax.get_yticklabels():
            tick.set_fontproperties(font)
    ax.set_title("KMNIST test set: true class (rows) vs predicted class (columns)")
    fig.tight_layout()
    with atomic_output(path) as tmp_path:
        fig.savefig(tmp_path, dpi=100)
    plt.close(fig)


def save_prediction_grid(panels, path, title):
    """A grid of 28x28 images, each with its caption and caption colour.

    ``panels`` is a list of (image as a 2-D array in [0, 1], caption, colour).
    Captions may hold hiragana: they are drawn with a CJK font when one exists.
    """
    font = hiragana_font()
    columns = min(5, len(panels))
    rows = -(-len(panels) // columns)
    plt.style.use("default")
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.6 * rows + 0.4),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, caption, colour) in zip(axes.flat, panels):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(caption, color=colour, fontsize=10, fontproperties=font)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp_path:
        fig.savefig(tmp_path, dpi=100)
    plt.close(fig)
