"""Where and how fast training runs: the device (CUDA, then Apple's MPS, then
the CPU), its arithmetic (bfloat16 mixed precision where the CPU computes it
natively) and, on the CPU, memory reuse.  docs/performance.md has the figures.
"""

import contextlib
import ctypes
import ctypes.util
import re
import sys

import torch

from modules.console import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "bf16")


def choose_device(name="auto"):
    """The torch.device for ``name``; "auto" asks torch.accelerator for the best one."""
    if name == "auto":
        found = torch.accelerator.is_available() and torch.accelerator.current_accelerator()
        return torch.device(found.type if found and found.type in ("cuda", "mps") else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU "
                        "(use --device auto or --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for, but MPS is not available on this "
                        "machine (use --device auto or --device cpu)")
    return torch.device(name)


def keep_freed_memory_for_reuse():
    """Ask glibc's malloc to keep freed blocks for reuse instead of handing them
    back to the kernel and faulting them in again every step (an epoch
    shorter, docs/performance.md).  True where it took effect (Linux with glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # M_MMAP_THRESHOLD (glibc's largest), M_TRIM_THRESHOLD, M_TOP_PAD from <malloc.h>
    return bool(mallopt(-3, 32 << 20) & mallopt(-1, 1 << 30) & mallopt(-2, 64 << 20))


def cpu_has_native_bf16():
    """True where the CPU does bfloat16 arithmetic in hardware (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"\b(avx512_bf16|amx_bf16)\b", f.read()) is not None
    except OSError:  # not Linux: don't guess
        return False


def choose_precision(name, device):
    """The autocast dtype for ``name`` on ``device``; None means plain float32.
    The weights, optimizer state and saved model stay float32 either way."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if name == "bf16":
        # is_bf16_supported() would also say yes for GPUs that only emulate it
        if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise UserError("--precision bf16 was asked for, but this GPU does not compute "
                            "bfloat16 in hardware; use --precision fp32")
        return torch.bfloat16
    return None


def prepare(device_name, precision_name):
    """train.py's one call: (device, autocast dtype or None), with the CPU's
    memory reuse switched on."""
    device = choose_device(device_name)
    if device.type == "cpu":
        keep_freed_memory_for_reuse()
    return device, choose_precision(precision_name, device)


def autocast(device, dtype):
    """Mixed precision for the forward pass when ``dtype`` is set, else nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
