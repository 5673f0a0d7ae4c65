"""Random distortions of whole batches, for the "improved" recipe.

Every image in a batch gets its own small rotation, scale, shear, shift and
elastic bend, done in one ``affine_grid``/``grid_sample`` call on the batch
tensor (on the same device as the batch), so augmentation costs little next
to training. No flips: a mirrored character is a different (or no) character.
"""

import math

import torch
from torch.nn import functional as F


def _uniform(n, limit, generator, device):
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * limit


def random_affine(images, generator=None, degrees=12.0, scale=0.12, shear=0.2, translate=0.1,
                  elastic=0.0, smoothness=4.0):
    """Distort each NCHW image: rotation in +-``degrees``, zoom in 1 +- ``scale``,
    shear factor in +-``shear`` and shift in +-``translate`` of the image size;
    with ``elastic`` > 0, also bend it by a smooth random displacement field
    (``elastic`` pixels on average, varying over ``smoothness`` pixels), the
    way handwriting varies from hand to hand (Simard et al., 2003)."""
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
    if elastic > 0:
        grid = grid + _smooth_field(images, smoothness, generator) * (2 * elastic / images.size(-1))
    # the background is black (0), so zero padding fills in naturally
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _smooth_field(images, sigma, generator):
    """Random (x, y) displacements per pixel, Gaussian-smoothed, unit mean size."""
    n, _, height, width = images.shape
    noise = torch.rand(n, 2, height, width, generator=generator, device=images.device) * 2 - 1
    radius = int(2 * sigma)
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).repeat(2, 1, 1, 1)  # one per displacement channel
    field = F.conv2d(F.pad(noise, (radius, radius, 0, 0), mode="reflect"),
                     kernel.view(2, 1, 1, -1), groups=2)
    field = F.conv2d(F.pad(field, (0, 0, radius, radius), mode="reflect"),
                     kernel.view(2, 1, -1, 1), groups=2)
    field = field / field.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return field.permute(0, 2, 3, 1)  # grid_sample wants N x H x W x 2


def distort(images, generator=None):
    """The improved recipe's augmentation: a random affine plus elastic bending."""
    return random_affine(images, generator, elastic=1.0)
