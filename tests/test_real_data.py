"""One epoch of the default recipe on the real KMNIST, where a copy is present.

Set KMNIST_DATA_DIR to a writable folder holding KMNIST/raw/ with the four
real files (.ci/run does this from ../shared/data when it exists).
"""

import json
import os

import pytest

from conftest import headless_env, run_script

DATA_DIR = os.environ.get("KMNIST_DATA_DIR")
# measured on a 2-core Zen 4 CPU, torch 2.14.1: one epoch of the tutorial
# recipe with seed 42 reaches 0.9012 on the test set (bf16 autocast) and
# 0.9032 (fp32); seed 43 gives 0.8770 / 0.8777, so another PyTorch build or
# CPU, which changes the arithmetic like a new seed does, can move it by a
# few points: hence the margin
MIN_ONE_EPOCH_ACCURACY = 0.85

pytestmark = pytest.mark.skipif(
    not DATA_DIR or not os.path.isdir(os.path.join(DATA_DIR or "", "KMNIST", "raw")),
    reason="real KMNIST not present (set KMNIST_DATA_DIR to a folder with KMNIST/raw/)")


def test_one_epoch_of_the_tutorial_recipe_on_the_real_data(tmp_path):
    result = run_script("train.py", "--data-dir", DATA_DIR, "--no-download", "--epochs", 1,
                        "--device", "cpu", "-m", tmp_path / "model.pth",
                        "-p", tmp_path / "plot.png", env=headless_env())
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert sum(sum(row) for row in metrics["confusion_matrix"]) == 10_000
    assert metrics["test_accuracy"] >= MIN_ONE_EPOCH_ACCURACY, metrics["test_accuracy"]

    predicted = run_script("predict.py", "-m", tmp_path / "model.pth", "--data-dir", DATA_DIR,
                           "--no-download", "--no-display", "-o", tmp_path / "grid.png",
                           env=headless_env())
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.count("[INFO] ground truth label:") == 10
