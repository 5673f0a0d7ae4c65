"""Training recipes: the tutorial's, and an opt-in better one for the same LeNet.

A recipe only decides how LeNet is trained (optimizer, schedule, loss,
augmentation, epochs); the network itself never changes.
"""

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.optim import Adam, AdamW
from torch.optim.lr_scheduler import OneCycleLR
from torch.optim.swa_utils import AveragedModel

from modules.augment import random_affine


@dataclass(frozen=True)
class Recipe:
    """How LeNet is trained: a short list of named choices."""
    name: str
    description: str
    epochs: int
    batch_size: int
    lr: float  # Adam's constant rate, or the peak of the one-cycle schedule
    val_split: float  # the fraction of the 60,000 training images held out to validate
    augment: bool = False  # a random affine distortion of every training image
    weight_decay: float = 0.0  # AdamW's decoupled weight decay; 0 means plain Adam
    one_cycle: bool = False  # warm up to lr, then anneal to almost zero
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # evaluate and save an EMA of the weights; 0 means none


RECIPES = {
    "tutorial": Recipe("tutorial", "the tutorial's: Adam, constant learning rate, NLLLoss",
                       epochs=10, batch_size=64, lr=1e-3, val_split=0.25),
    # Each comment says what the choice bought: test accuracy on seed 42
    # against the recipe without it (98.33% with everything; README,
    # "--recipe improved", has the table).
    "improved": Recipe(
        "improved", "random affine augmentation, AdamW with weight decay, one-cycle "
                    "schedule, label smoothing, weight averaging",
        epochs=30, batch_size=256, lr=4e-3,  # 2.8x the tutorial recipe's wall time
        val_split=0.05,  # +0.24 points against 25%: 57,000 images train instead of 45,000
        augment=True,  # +0.84: ±8° rotations, ±8% zooms and shifts (modules/augment.py)
        weight_decay=0.05,  # +0.06 against 5e-4 (measured with a stronger augmentation)
        one_cycle=True,  # +0.05 against a constant 1e-3
        label_smoothing=0.1,  # +0.23
        ema_decay=0.999,  # +0.01: within the noise once the schedule anneals to ~0
    ),
}
# the same choices trained twice as long: 98.58% mean test accuracy on fresh
# seeds 100-102 (98.42% for "improved") in 5.7x the tutorial recipe's wall time
RECIPES["best"] = replace(RECIPES["improved"], name="best", epochs=60,
                          description="the improved recipe, trained twice as long")


@dataclass
class TrainingParts:
    """What the training loop needs beyond the model and the data."""
    opt: torch.optim.Optimizer
    lossFn: nn.Module
    scheduler: object = None
    augment: object = None
    averaged: AveragedModel = None

    def model_to_evaluate(self, model):
        """The weight average where the recipe keeps one, else the model itself."""
        return self.averaged.module if self.averaged is not None else model


def fused_if_supported(device):
    """Adam's fused kernel (one pass over all weights) where PyTorch has one."""
    return True if torch.device(device).type in ("cpu", "cuda") else None


def ema_with_warmup(decay):
    """An exponential moving average whose decay ramps up to ``decay``.

    Early on, (1 + n) / (10 + n) < ``decay`` lets the average follow the
    fast-changing weights instead of clinging to their random start, so a
    short run is not judged on near-initial weights; after a few thousand
    steps it is a plain EMA with ``decay``.  All weights are updated in one
    foreach call (a third of the time of one call per weight tensor), and
    the rate stays a tensor, so the host never waits for the device here.
    """
    @torch.no_grad()
    def average(averaged_params, current_params, num_averaged):
        rate = torch.clamp((1 + num_averaged) / (10 + num_averaged), max=decay)
        torch._foreach_lerp_(averaged_params, current_params, 1 - rate)
    return average


def tutorial_parts(model, lr, device):
    """The tutorial's choices: Adam and NLLLoss on LeNet's log-probabilities."""
    return recipe_parts(RECIPES["tutorial"], model, lr, epochs=1, steps_per_epoch=1,
                        device=device)


def recipe_parts(recipe, model, lr, epochs, steps_per_epoch, device, generator=None,
                 capturable=False):
    """The optimizer, loss and (where the recipe has them) the schedule,
    augmentation and weight average that ``recipe`` trains ``model`` with.

    ``capturable`` makes the optimizer fit for a CUDA graph: its state on the
    GPU, and the learning rate a tensor the schedule updates in place.
    """
    options = {"lr": lr, "fused": fused_if_supported(device)}
    if capturable:
        options.update(lr=torch.tensor(lr, device=device), capturable=True)
    if recipe.weight_decay:
        opt = AdamW(model.parameters(), weight_decay=recipe.weight_decay, **options)
    else:
        opt = Adam(model.parameters(), **options)
    scheduler = (OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
                 if recipe.one_cycle else None)
    # LeNet already outputs log-probabilities; log_softmax leaves those
    # unchanged, so CrossEntropyLoss on them is NLLLoss plus label smoothing
    lossFn = (nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
              if recipe.label_smoothing else nn.NLLLoss())
    augment = (lambda x: random_affine(x, generator=generator)) if recipe.augment else None
    averaged = (AveragedModel(model, multi_avg_fn=ema_with_warmup(recipe.ema_decay),
                              use_buffers=True) if recipe.ema_decay else None)
    return TrainingParts(opt=opt, lossFn=lossFn, scheduler=scheduler, augment=augment,
                         averaged=averaged)
