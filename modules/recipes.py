"""Training recipes: the tutorial's, and opt-in better ones for the same LeNet.

A recipe only decides how LeNet is trained (optimizer, loss, schedule,
augmentation, epochs); the network never changes.  docs/recipes.md says
what each choice bought, measured, and which signal made it.
"""

import math
from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F
from torch.optim.lr_scheduler import OneCycleLR


def random_affine(images, generator=None, degrees=8.0, scale=0.08, shear=0.15, translate=0.08):
    """Distort each NCHW image on its own: rotation in +-``degrees``, zoom in
    1 +- ``scale``, shear in +-``shear``, shift in +-``translate`` of its size.
    One affine_grid/grid_sample call for the batch, on its device (about 1 ms
    for 256 images on a CPU core).  No flips: a mirrored character is another."""
    (n, device) = (images.size(0), images.device)

    def uniform(limit, count=n):
        return (torch.rand(count, generator=generator, device=device) * 2 - 1) * limit

    angle = uniform(math.radians(degrees))
    zoom = 1 + uniform(scale)
    shear_x = uniform(shear)
    shift = uniform(2 * translate, 2 * n).view(n, 2)  # grid coordinates run from -1 to 1
    (cos, sin) = (torch.cos(angle) / zoom, torch.sin(angle) / zoom)
    # theta maps each output pixel to where it samples the input
    theta = torch.stack([
        torch.stack([cos, cos * shear_x - sin, shift[:, 0]], dim=1),
        torch.stack([sin, sin * shear_x + cos, shift[:, 1]], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # the background is black (0), so zero padding fills in naturally
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class Recipe:
    """How LeNet is trained: a short list of named choices; the tutorial's
    hyperparameters unless a recipe says otherwise."""
    name: str
    description: str
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3  # Adam's constant rate, or the peak of the one-cycle schedule
    val_split: float = 0.25  # the share of the 60,000 training images held out
    augment: bool = False  # random_affine on every training batch
    weight_decay: float = 0.0  # AdamW's decoupled weight decay; 0 means plain Adam
    one_cycle: bool = False  # warm up to lr, then anneal to almost zero
    label_smoothing: float = 0.0

    def schedule(self, opt, lr, epochs, steps_per_epoch):
        """The one-cycle learning-rate schedule (stepped once per batch), or None."""
        if not self.one_cycle:
            return None
        return OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)

    def augmentation(self, generator):
        """A function that distorts a batch of images, or None."""
        if not self.augment:
            return None
        return lambda images: random_affine(images, generator=generator)


RECIPES = {
    "tutorial": Recipe("tutorial", "the tutorial's: Adam, constant learning rate, NLLLoss "
                                   "(10 epochs, batch 64, lr 0.001)"),
    "improved": Recipe(
        "improved", "random affine augmentation, AdamW with weight decay, one-cycle "
                    "schedule, label smoothing (30 epochs, batch 256, lr 0.004)",
        epochs=30, batch_size=256, lr=4e-3, val_split=0.05, augment=True, weight_decay=0.05,
        one_cycle=True, label_smoothing=0.1),
}
RECIPES["best"] = replace(RECIPES["improved"], name="best", epochs=60,
                          description="the improved recipe, trained twice as long (60 epochs)")
# the improved recipe squeezed into 2 epochs: a 4x higher peak learning rate
# makes up for the fewer steps; the tutorial's split, so its validation
# accuracy compares with the tutorial's (docs/recipes.md)
RECIPES["fast"] = replace(
    RECIPES["improved"], name="fast", epochs=2, lr=1.6e-2, val_split=0.25,
    description="the improved recipe, short: 4 times its peak learning rate, the "
                "tutorial's 75/25 split (2 epochs, batch 256, lr 0.016)")
