import json
import os

import pytest
import torch

from conftest import ROOT
from modules.recipes import random_affine
from modules.checkpoint import build_model, load_checkpoint
from modules.lenet import LeNet
from modules.recipes import RECIPES


@pytest.mark.parametrize("recipe, optimizer, lr, weight_decay, loss, smoothing", [
    ("tutorial", torch.optim.Adam, 1e-3, 0, torch.nn.NLLLoss, None),
    ("improved", torch.optim.AdamW, 4e-3, 0.05, torch.nn.CrossEntropyLoss, 0.1),
    ("fast", torch.optim.AdamW, 1.6e-2, 0.05, torch.nn.CrossEntropyLoss, 0.1),
])
def test_train_builds_each_recipes_optimizer_and_loss(small_kmnist, tmp_path, monkeypatch, run,
                                                      recipe, optimizer, lr,
                                                      weight_decay, loss, smoothing):
    """What train.py builds where the tutorial builds its Adam and NLLLoss,
    caught as it is built: the tutorial's, or AdamW and label smoothing."""
    import train

    built = []

    def spy(cls):
        def build(*args, **kwargs):
            built.append(cls(*args, **kwargs))
            return built[-1]
        return build

    for name in ("Adam", "AdamW"):
        monkeypatch.setattr(train, name, spy(getattr(torch.optim, name)))
    for name in ("NLLLoss", "CrossEntropyLoss"):
        monkeypatch.setattr(torch.nn, name, spy(getattr(torch.nn, name)))
    (code, _, err) = run("train.py", "--recipe", recipe, "--epochs", 1, "--data-dir", small_kmnist,
                         "--no-download", "--device", "cpu", "-m", tmp_path / "m.pth",
                         "-p", tmp_path / "p.png")
    assert code == 0, err
    # the last of each built is the one trained with (a recipe replaces the tutorial's)
    opt = [b for b in built if isinstance(b, torch.optim.Optimizer)][-1]
    lossFn = [b for b in built if isinstance(b, torch.nn.Module)][-1]
    assert type(opt) is optimizer and opt.defaults["lr"] == lr
    assert opt.defaults["weight_decay"] == weight_decay
    assert opt.defaults["betas"] == (0.9, 0.999)  # Adam's defaults, as the tutorial's
    assert type(lossFn) is loss
    assert getattr(lossFn, "label_smoothing", None) == smoothing


def test_the_improved_recipes_schedule_and_augmentation():
    """The parts train.py takes from the recipe: none for the tutorial's; a
    one-cycle schedule and a distortion of every batch for the improved one."""
    model = LeNet(1, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    assert RECIPES["tutorial"].schedule(opt, 1e-3, 10, 100) is None
    assert RECIPES["tutorial"].augmentation(None) is None
    improved = RECIPES["improved"]
    schedule = improved.schedule(opt, 4e-3, 2, 10)
    rates = []
    for _ in range(20):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    # warms up to the peak, then anneals to almost nothing
    assert max(rates) == pytest.approx(4e-3) and rates[0] < 4e-4 and rates[-1] < 1e-5
    assert improved.augmentation(torch.Generator())(torch.zeros(2, 1, 28, 28)).shape == \
        (2, 1, 28, 28)


def test_affine_with_no_distortion_is_the_identity():
    images = torch.rand(4, 1, 28, 28)
    same = random_affine(images, degrees=0, scale=0, shear=0, translate=0)
    assert torch.allclose(same, images, atol=1e-5)


def test_affine_distorts_each_image_differently_and_repeatably():
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0
    a = random_affine(images, generator=torch.Generator().manual_seed(1))
    b = random_affine(images, generator=torch.Generator().manual_seed(1))
    c = random_affine(images, generator=torch.Generator().manual_seed(2))
    assert a.shape == images.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a[0], a[1])  # per-image parameters
    # small distortions: the ink stays roughly where it was, and of similar amount
    assert ((a.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))) - 1).abs().max() < 0.35
    assert a.min() >= 0 and a.max() <= 1 and a.dtype == images.dtype


@pytest.mark.parametrize("name, epochs, split, floor", [
    ("improved", ["--epochs", 2], (1900, 100), 0.6),  # holds out 5% of the training images
    # its own 2 epochs on the tutorial's 75/25 split: 12 steps here, so less learned
    ("fast", [], (1500, 500), 0.4),
])
def test_improved_and_fast_recipes_run_end_to_end(kmnist_dir, tmp_path, name, epochs, split,
                                                  floor, run):
    result = run("train.py", "--recipe", name, *epochs, "--data-dir",
                 kmnist_dir, "--no-download", "--device", "cpu",
                 "-m", tmp_path / "model.pth", "-p", tmp_path / "plot.png")
    assert result.returncode == 0, result.stderr
    recipe = RECIPES[name]
    assert (f"with the {name} recipe (2 epochs, batch {recipe.batch_size}, "
            f"lr {recipe.lr:g}") in result.stdout
    checkpoint = load_checkpoint(tmp_path / "model.pth")
    assert checkpoint["options"]["recipe"] == name
    # the saved weights are the plain LeNet's
    model = build_model(checkpoint, "model.pth")
    assert sum(p.numel() for p in model.parameters()) == 431_080
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["history"]["val_acc"]) == 2
    assert (metrics["train_samples"], metrics["val_samples"]) == split
    assert metrics["test_accuracy"] > floor  # chance is 0.1
    assert (tmp_path / "confusion_matrix.png").exists()


def table_rows(page, min_cells):
    """The rows of ``page``'s tables whose first cell names a recipe, by recipe."""
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= min_cells and cells[0].strip("`") in RECIPES:
            rows[cells[0].strip("`")] = cells
    assert sorted(rows) == sorted(RECIPES), page
    return rows


def defaults(recipe):
    """(epochs, batch size, lr, validation share)."""
    return (recipe.epochs, recipe.batch_size, recipe.lr, recipe.val_split)


def test_the_tutorial_recipe_is_the_tutorials():
    assert defaults(RECIPES["tutorial"]) == (10, 64, 1e-3, 0.25)  # the tutorial's values
    assert not (RECIPES["tutorial"].augment or RECIPES["tutorial"].one_cycle)
    assert (RECIPES["tutorial"].weight_decay, RECIPES["tutorial"].label_smoothing) == (0, 0)


def test_recipe_defaults_are_what_docs_recipes_says():
    """docs/recipes.md's table of recipes lists each recipe's defaults; they must match."""
    rows = table_rows(os.path.join("docs", "recipes.md"), 9)
    for name, recipe in RECIPES.items():
        (_, epochs, batch, lr, split, augment, optimizer, schedule, smoothing) = rows[name][:9]
        (train, val) = (int(v) for v in split.split("/"))
        assert (int(epochs), int(batch), float(lr), val / 100) == defaults(recipe), name
        assert train + val == 100, name
        assert (augment != "none") == recipe.augment, name
        assert optimizer == (f"AdamW, weight decay {recipe.weight_decay:g}"
                             if recipe.weight_decay else "Adam"), name
        assert schedule == ("one-cycle" if recipe.one_cycle else "constant"), name
        assert smoothing == (f"{recipe.label_smoothing:g}" if recipe.label_smoothing
                             else "none"), name


def test_the_readmes_recipe_table_matches_the_code():
    """README.md's short table: epochs, batch and a command that runs that recipe."""
    rows = table_rows("README.md", 6)
    for name, recipe in RECIPES.items():
        (_, epochs, batch, _, _, command) = rows[name][:6]
        assert (int(epochs), int(batch)) == defaults(recipe)[:2], name
        command = command.strip("`").split()
        assert command[:2] == ["python", "train.py"], name
        assert (name == "tutorial" and "--recipe" not in command) or \
            command[command.index("--recipe") + 1] == name
