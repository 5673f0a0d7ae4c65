"""What train.py writes beside the model file after the test evaluation: the
reports on what the network learned and got wrong.

    confusion_matrix.png  true against predicted class on the test set
    mistakes.png          the 25 most confident mistakes
    filters.png           conv1's filters, conv1's and conv2's feature maps
    metrics.json          history, test accuracy, confusion matrix, options, times

The pictures and the metrics go next to the model file.
"""

import json
import os
import time

import torch
from sklearn.metrics import confusion_matrix

from modules.checkpoint import versions
from modules.data import CLASS_NAMES, HIRAGANA
from modules.glyphs import GLYPH_HINT, hiragana_font
from modules.paths import atomic_output
from modules.plots import save_confusion_matrix, save_filters, save_mistakes


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
