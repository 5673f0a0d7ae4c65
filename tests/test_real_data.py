"""One epoch of the default recipe on the real KMNIST, where a copy is present.

The test looks in KMNIST_DATA_DIR when that is set (a writable folder
holding KMNIST/raw/; .ci/run makes one from ../shared/data), else in data/
beside train.py, and passes the folder as --data-dir (the scripts read no
environment variable).  data/ is the reader's own folder, so its files are
copied first: the .gz files are extracted next to themselves.
"""

import json
import os
import shutil

import pytest

from conftest import ROOT

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
DEFAULT_RAW = os.path.join(ROOT, "data", "KMNIST", "raw")
DATA_DIR = os.environ.get("KMNIST_DATA_DIR") or (os.path.join(ROOT, "data")
                                               if os.path.isdir(DEFAULT_RAW) else None)
# measured on a 2-core Zen 4 CPU, torch 2.14.1: one epoch of the tutorial
# recipe with seed 42 reaches 0.9012 on the test set (bf16 autocast) and
# 0.9032 (fp32); seed 43 gives 0.8770 / 0.8777, so another PyTorch build or
# CPU, which changes the arithmetic like a new seed does, can move it by a
# few points: hence the margin
MIN_ONE_EPOCH_ACCURACY = 0.85

pytestmark = pytest.mark.skipif(
    not DATA_DIR or not os.path.isdir(os.path.join(DATA_DIR or "", "KMNIST", "raw")),
    reason="real KMNIST not present (in data/KMNIST/raw/, or set KMNIST_DATA_DIR to a "
           "folder with KMNIST/raw/)")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """KMNIST_DATA_DIR as it is, or a copy of data/'s KMNIST files."""
    if os.environ.get("KMNIST_DATA_DIR"):
        return os.environ["KMNIST_DATA_DIR"]
    copy = tmp_path_factory.mktemp("data")
    os.makedirs(copy / "KMNIST" / "raw")
    for name in os.listdir(DEFAULT_RAW):
        if name in RAW_FILES or name.removesuffix(".gz") in RAW_FILES:
            shutil.copy(os.path.join(DEFAULT_RAW, name), copy / "KMNIST" / "raw" / name)
    return copy


def test_one_epoch_of_the_tutorial_recipe_on_the_real_data(data_dir, tmp_path, run):
    result = run("train.py", "--data-dir", data_dir, "--no-download", "--epochs", 1,
                 "--device", "cpu", "-m", tmp_path / "model.pth", "-p", tmp_path / "plot.png")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert sum(sum(row) for row in metrics["confusion_matrix"]) == 10_000
    assert metrics["test_accuracy"] >= MIN_ONE_EPOCH_ACCURACY, metrics["test_accuracy"]

    predicted = run("predict.py", "-m", tmp_path / "model.pth", "--data-dir", data_dir,
                    "--no-download", "--no-display", "-o", tmp_path / "grid.png")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.count("[INFO] ground truth label:") == 10
