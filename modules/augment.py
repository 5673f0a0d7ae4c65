"""Random distortions of whole batches, for the "improved" recipe.

Every image in a batch gets its own small rotation, scale, shear and shift,
done in one ``affine_grid``/``grid_sample`` call on the batch tensor (on the
same device as the batch), and may lose a random rectangle of ink (random
erasing), so augmentation costs little next to training. No flips: a
mirrored character is a different (or no) character.
"""

import math

import torch
from torch.nn import functional as F


def _uniform(n, limit, generator, device):
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * limit


def random_affine(images, generator=None, degrees=15.0, scale=0.15, shear=0.25, translate=0.1):
    """Distort each NCHW image: rotation in +-``degrees``, zoom in 1 +- ``scale``,
    shear factor in +-``shear`` and shift in +-``translate`` of the image size."""
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


def random_erasing(images, generator=None, p=0.5, area=(0.02, 0.15), aspect=(0.3, 3.3)):
    """Blank one random rectangle (``area`` of the image, ``aspect`` h/w) in a
    fraction ``p`` of the images, so the network cannot lean on any one stroke."""
    n, _, height, width = images.shape
    device = images.device

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=generator, device=device)

    chosen = torch.rand(n, generator=generator, device=device) < p
    size = uniform(*area) * height * width
    ratio = torch.exp(uniform(math.log(aspect[0]), math.log(aspect[1])))
    box_h = torch.sqrt(size * ratio).clamp(1, height)
    box_w = torch.sqrt(size / ratio).clamp(1, width)
    top = uniform(0, 1) * (height - box_h)
    left = uniform(0, 1) * (width - box_w)

    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + box_h).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + box_w).view(n, 1, 1)))
    return images.masked_fill((inside & chosen.view(n, 1, 1)).unsqueeze(1), 0.0)


def distort(images, generator=None):
    """The improved recipe's augmentation: a random affine, then random erasing."""
    return random_erasing(random_affine(images, generator), generator)
