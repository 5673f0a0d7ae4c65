"""Choosing where the model runs: CUDA, Apple's MPS, or the CPU."""

import torch

from modules.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available():
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def choose_device(name="auto"):
    """Return the torch.device for ``name`` ("auto" picks the best one present).

    "auto" asks ``torch.accelerator`` (PyTorch >= 2.6) for the machine's
    accelerator, so CUDA is used where present, then MPS, then the CPU.
    """
    if name == "auto":
        accelerator = getattr(torch, "accelerator", None)
        if accelerator is not None and accelerator.is_available():
            device = accelerator.current_accelerator()
            if device.type in ("cuda", "mps"):
                return torch.device(device.type)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU "
                            "(use --device auto or --device cpu)")
        return torch.device("cuda")
    if name == "mps":
        if not _mps_available():
            raise UserError("--device mps was asked for, but MPS is not available on this "
                            "machine (use --device auto or --device cpu)")
        return torch.device("mps")
    raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
