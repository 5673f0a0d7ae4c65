import json
import os
import stat

import cv2
import numpy as np

import pytest
import torch

import train
from modules.checkpoint import build_model, load_checkpoint
from modules.data import CLASS_NAMES


def test_end_to_end_writes_a_loadable_model_plot_and_metrics(trained):
    out, result = trained
    console = result.stdout
    for line in ("[INFO] loading the KMNIST dataset...", "[INFO] training the network...",
                 "[INFO] EPOCH: 1/2", "[INFO] EPOCH: 2/2", "Train loss: ", "Val accuracy: ",
                 "[INFO] total time taken to train the model: ", "[INFO] evaluating network...",
                 "precision    recall  f1-score   support", "most confused pairs"):
        assert line in console, line
    for name in CLASS_NAMES:
        assert f"\n{name:>12}" in console  # a row of the classification report
    assert result.stderr == ""  # no progress bar or warnings when not on a terminal

    checkpoint = load_checkpoint(out / "model.pth")
    model = build_model(checkpoint, "model.pth")
    assert checkpoint["options"]["epochs"] == 2 and checkpoint["options"]["lr"] == 0.001
    assert checkpoint["architecture"] == {"name": "LeNet", "numChannels": 1, "classes": 10}
    assert checkpoint["class_names"] == list(CLASS_NAMES)

    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]["train_loss"]) == 2
    assert metrics["test_accuracy"] == checkpoint["test_accuracy"]
    assert metrics["test_accuracy"] > 0.8  # chance is 0.1
    matrix = torch.tensor(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 200
    assert abs(matrix.diag().sum().item() / 200 - metrics["test_accuracy"]) < 1e-6
    assert metrics["device"] == "cpu" and metrics["options"]["batch_size"] == 64
    # the tutorial's 75/25 split of the 2,000 generated training images
    assert (metrics["train_samples"], metrics["val_samples"]) == (1500, 500)
    assert 0 < metrics["train_seconds"] < metrics["wall_seconds"]
    assert set(metrics["versions"]) == {"torch", "torchvision", "python"}
    assert f"[INFO] test accuracy: {metrics['test_accuracy']:.4f}" in console

    for picture in ("plot.png", "confusion_matrix.png", "mistakes.png", "filters.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = cv2.imread(str(out / picture))
        # (mistakes.png: one panel, about 230 pixels wide, where the model made one mistake)
        assert image is not None and 200 <= min(image.shape[:2]) and max(image.shape[:2]) <= 1500
        assert image.std() > 10, picture  # not a blank page
    # the model and the plot are named with their paths, the rest beside them by name
    assert f"saved the model to {out / 'model.pth'}, the plot to {out / 'plot.png'}, " \
        "and beside them" in console
    assert "(confusion_matrix.png, mistakes.png, filters.png, metrics.json, epochs.pth)" \
        in console
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_outputs_get_the_ordinary_file_mode(trained):
    out, _ = trained
    umask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(umask)
    for name in ("model.pth", "plot.png", "confusion_matrix.png", "mistakes.png",
                 "filters.png", "metrics.json", "epochs.pth"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name


def test_the_weights_of_each_epoch_are_kept_in_half_precision_the_last_the_models(trained):
    """epochs.pth: the random weights before training, then each epoch's; the
    last is model.pth's own, and at epoch 0 LeNet reads a character as
    about equally likely any class."""
    from modules.checkpoint import load_epochs

    out, _ = trained
    model = build_model(load_checkpoint(out / "model.pth"), "model.pth")
    epochs = load_epochs(out / "epochs.pth", model)
    assert len(epochs) == 3 and (out / "epochs.pth").stat().st_size < 3 * 900_000
    assert all(v.dtype == torch.float16 for weights in epochs for v in weights.values())
    for (name, value) in model.state_dict().items():
        assert torch.equal(epochs[-1][name], value.half()), name
        assert not torch.equal(epochs[0][name], epochs[1][name]), name  # each epoch's own
    from conftest import strokes_of_class
    from modules.canvas import Canvas, read_drawing

    model.load_state_dict(epochs[0])
    for k in range(10):
        probabilities = read_drawing(model, Canvas(strokes_of_class(k)).image(), "cpu") \
            .probabilities
        assert probabilities.max() < 0.15 and probabilities.min() > 0.05  # uniform: 0.1


def test_loss_history_is_plain_per_sample_numbers(trained):
    out, _ = trained
    history = json.loads((out / "metrics.json").read_text())["history"]
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        assert all(isinstance(v, float) and v >= 0 for v in history[key])
    assert history["train_loss"][1] < history["train_loss"][0]


def test_train_loss_is_plain_nll_also_where_the_recipe_smooths_labels(kmnist_dir, tmp_path,
        monkeypatch, run):
    """With label smoothing 0.1 over ten classes the training objective cannot
    fall below 0.50 (the entropy of the smoothed target), while the plain NLL
    of a model that fits the data does: the history must hold the NLL, as for
    validation, so that the plot compares like with like."""
    from dataclasses import replace

    smoothing = replace(train.RECIPES["tutorial"], label_smoothing=0.1)
    monkeypatch.setitem(train.RECIPES, "tutorial", smoothing)
    code, out, err = run("train.py", "--data-dir", kmnist_dir, "--epochs", 3, "--no-download",
                         "--device", "cpu", "-m", tmp_path / "m.pth",
                         "-p", tmp_path / "p.png")
    assert code == 0, err
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert history["val_loss"][-1] < 0.3  # the model fits: its plain NLL is low
    assert history["train_loss"][-1] < 0.45  # below what the smoothed loss can reach
    assert f"Train loss: {history['train_loss'][-1]:.6f}" in out


def test_one_epoch_plot_shows_its_points_at_an_integer_epoch(kmnist_dir, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from modules.reports import save_training_plot

    figures = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig)
                        or real_savefig(fig, *a, **k))
    history = {"train_loss": [0.2], "val_loss": [0.3], "train_acc": [0.95], "val_acc": [0.9]}
    save_training_plot(history, tmp_path / "plot.png")
    (ax,) = figures[0].axes
    assert [tick for tick in ax.get_xticks() if 0.5 <= tick <= 1.5] == [1.0]
    picture = cv2.imread(str(tmp_path / "plot.png"))
    # ggplot's grey background, white grid and dark text have no strong
    # colour: strongly coloured pixels in the middle of the axes, away from
    # the legend, can only be the epoch's points
    (height, width, _) = picture.shape
    middle = picture[:, width // 2 - 80:width // 2 + 80].astype(int)
    coloured = (middle.max(axis=2) - middle.min(axis=2)) > 100
    assert coloured.sum() > 40


def test_same_seed_gives_the_same_weights(small_kmnist, tmp_path, run):
    weights = []
    for name in ("a", "b", "c"):
        seed = 7 if name != "c" else 8
        code, _, err = run("train.py", "--data-dir", small_kmnist, "--epochs", 1, "--no-download",
                           "--device", "cpu", "--seed", seed,
                           "-m", tmp_path / name / "m.pth", "-p", tmp_path / name / "p.png")
        assert code == 0, err
        weights.append(load_checkpoint(tmp_path / name / "m.pth")["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "argument --epochs: must be at least 1"),
    (["--batch-size", "-3"], "argument --batch-size: must be at least 1"),
    (["--lr", "fast"], "argument --lr: 'fast' is not a number"),
    (["--lr", "-1"], "argument --lr: must be a positive number"),
    (["--seed", "-1"], "argument --seed: must be from 0 to 4294967295"),
    (["--seed", str(2**32)], "argument --seed: must be from 0 to 4294967295"),
    (["--device", "tpu"], "argument --device: invalid choice"),
    (["--recipe", "magic"], "argument --recipe: invalid choice"),
    (["--val-split", "0"], "argument --val-split: must be between 0 and 1"),
    (["--val-split", "1"], "argument --val-split: must be between 0 and 1"),
    (["--val-split", "nan"], "argument --val-split: must be between 0 and 1"),
    (["--val-split", "a"], "argument --val-split: 'a' is not a number"),
])
def test_bad_option_values(argv, message, run):
    code, _, err = run("train.py", *argv)
    assert code == 2 and message in err


def test_val_split_decides_how_many_images_train_and_validate(kmnist_dir, tmp_path, run):
    code, out, err = run("train.py", "--data-dir", kmnist_dir, "--epochs", 1, "--no-download",
                         "--val-split", 0.1, "-m", tmp_path / "m.pth",
                         "-p", tmp_path / "p.png")
    assert code == 0, err
    assert "90%/10% train/val split" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["train_samples"], metrics["val_samples"]) == (1800, 200)
    assert metrics["options"]["val_split"] == 0.1


def test_val_split_that_leaves_no_images_is_refused_before_training(kmnist_dir, tmp_path, run):
    code, out, err = run("train.py", "--data-dir", kmnist_dir, "--no-download", "--val-split",
                         0.0001, "-m", tmp_path / "m.pth")
    assert code == 1 and "--val-split" in err and "leaves no image on one side" in err
    assert "training the network" not in out and not (tmp_path / "m.pth").exists()


def test_unavailable_device_is_a_clear_error(kmnist_dir, tmp_path, run):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run("train.py", "--device", "cuda", "--data-dir", kmnist_dir, "-m",
                       tmp_path / "m.pth")
    assert code == 1 and "[ERROR] --device cuda was asked for" in err
    assert "Traceback" not in err


def test_missing_data_fails_cleanly_and_keeps_the_earlier_model(trained, tmp_path, run):
    out, _ = trained
    model = tmp_path / "model.pth"
    model.write_bytes((out / "model.pth").read_bytes())
    before = model.read_bytes()
    code, _, err = run("train.py", "--data-dir", tmp_path / "empty", "--no-download",
                       "-m", model, "-p", tmp_path / "plot.png")
    assert code == 1 and len(err.splitlines()) == 1  # (the message: tests/test_data.py)
    assert model.read_bytes() == before


def test_interrupted_training_keeps_the_earlier_model(kmnist_dir, trained, tmp_path,
        monkeypatch, run):
    out, _ = trained
    model = tmp_path / "model.pth"
    model.write_bytes((out / "model.pth").read_bytes())
    before = model.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "progress", interrupted)  # Ctrl-C in the first epoch
    code, _, err = run("train.py", "--data-dir", kmnist_dir, "--no-download", "-m", model,
                       "-p", tmp_path / "plot.png")
    assert code == 130 and "interrupted" in err
    assert model.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pth"]


def test_output_path_that_cannot_be_written_is_refused_before_training(kmnist_dir, tmp_path, run):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run("train.py", "--data-dir", kmnist_dir, "-m", blocker / "sub" / "m.pth")
    assert code == 1 and "is a file" in err
    assert "training the network" not in out
    code, _, err = run("train.py", "--data-dir", kmnist_dir, "-m", tmp_path)
    assert code == 1 and "is a folder" in err


def test_help_shows_the_tutorial_defaults(run):
    result = run("train.py", "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for expected in ("(default: output/model.pth; output/RECIPE/model.pth for another "
                     "--recipe)", "(default: plot.png beside the model)",
                     "(default: data)", "(default: 42)", "(default: auto)",
                     "10 epochs, batch 64, lr 0.001", "0.25 for tutorial"):
        assert expected in text, expected


def test_most_confident_mistakes_come_first():
    from modules.reports import most_confident_mistakes

    probs = np.full((6, 10), 0.01)
    targets = np.array([0, 1, 2, 3, 4, 5])
    for i, (predicted, p) in enumerate([(0, .9), (2, .6), (2, .9), (9, .95), (4, .5), (1, .7)]):
        probs[i, predicted] = p
    # wrong with 95%, then 70%, then 60%; images 0, 2 and 4 are right
    assert list(most_confident_mistakes(targets, probs)) == [3, 5, 1]


def test_mistakes_and_filters_pictures_from_a_model(tmp_path):
    from modules.lenet import LeNet
    from modules.reports import save_filters, save_mistakes

    torch.manual_seed(0)
    model = LeNet(1, 10)
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    targets = torch.arange(40) % 10
    with torch.no_grad():
        log_probs = model(images[:, None].float() / 255)
    save_mistakes(images.numpy(), targets.numpy(), log_probs.exp().numpy(), tmp_path / "m.png")
    save_filters(model, images[0].numpy() / 255, 3, tmp_path / "f.png")
    for name in ("m.png", "f.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and min(image.shape[:2]) >= 300 and image.std() > 10


def test_main_from_a_notebook_reads_only_the_arguments_it_is_given(monkeypatch):
    """A Jupyter kernel's own command line (-f kernel.json) is not train.py's."""
    import predict

    monkeypatch.setattr("sys.argv", ["ipykernel_launcher.py", "-f", "kernel.json"])
    assert train.parse_args(()).epochs == 10 and train.parse_args(["--epochs", "2"]).epochs == 2
    assert predict.parse_args(()).num == 10


def test_each_recipe_but_the_tutorials_writes_to_a_folder_of_its_own(small_kmnist, tmp_path,
                                                                    monkeypatch, run):
    """A second recipe never replaces the first one's model and pictures."""
    monkeypatch.chdir(tmp_path)
    for recipe in ("tutorial", "fast"):
        (code, out, err) = run("train.py", "--recipe", recipe, "--epochs", 1, "--data-dir",
                               small_kmnist, "--no-download", "--device", "cpu")
        assert code == 0, err
    tutorial = load_checkpoint(tmp_path / "output" / "model.pth")
    fast = load_checkpoint(tmp_path / "output" / "fast" / "model.pth")
    assert (tutorial["options"]["recipe"], fast["options"]["recipe"]) == ("tutorial", "fast")
    assert sorted(os.listdir(tmp_path / "output" / "fast")) == sorted(
        ["model.pth", "plot.png", "confusion_matrix.png", "mistakes.png", "filters.png",
         "metrics.json", "epochs.pth"])
    assert f"saved the model to {os.path.join('output', 'fast', 'model.pth')}, the plot to " \
        f"{os.path.join('output', 'fast', 'plot.png')}" in out
