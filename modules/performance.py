"""Settings that make small-batch training faster: memory reuse and precision.

glibc hands big allocations (a 64x20x24x24 activation is 2.9 MB) straight
to the kernel with mmap and returns them on free, so every training step
page-faults thousands of fresh pages back in (measured here: 2.2 million
page faults in one epoch, 0.3 million with reuse).  Keeping freed memory in
the heap for reuse removed that churn and made an epoch 24% shorter (12.34
-> 9.43 s, docs/performance.md); the memory stays with the process, which
for a training run is what we want anyway.
"""

import contextlib
import ctypes
import ctypes.util
import re
import sys

import torch

from modules.errors import UserError

# mallopt() parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3


def keep_freed_memory_for_reuse():
    """Ask glibc's malloc to reuse freed blocks instead of returning them to
    the kernel.  Returns True if the settings took effect (Linux with glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest allowed
    ok &= mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    ok &= mallopt(M_TOP_PAD, 64 * 1024 * 1024)
    return bool(ok)


PRECISION_CHOICES = ("auto", "fp32", "bf16")


def cpu_has_native_bf16():
    """True where the CPU does bfloat16 arithmetic in hardware (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # not Linux: don't guess
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def cuda_has_native_bf16():
    """True where the GPU computes bfloat16 natively (NVIDIA: Ampere and later).

    ``torch.cuda.is_bf16_supported()`` also says yes, by default, for GPUs
    that only emulate bfloat16 with float32 arithmetic.
    """
    return torch.cuda.is_bf16_supported(including_emulation=False)


def choose_precision(name, device):
    """The autocast dtype for ``name`` on ``device``: None means plain float32.

    "auto" picks bfloat16 mixed precision only on CPUs that compute it
    natively, where it made an epoch 30% shorter (9.43 -> 6.57 s,
    docs/performance.md); the weights, optimizer state and saved model stay
    float32 either way.
    """
    if name == "fp32":
        return None
    if name == "bf16":
        if device.type == "cuda" and not cuda_has_native_bf16():
            raise UserError("--precision bf16 was asked for, but this GPU does not compute "
                            "bfloat16 in hardware (it would only emulate it, slowly); use "
                            "--precision fp32")
        return torch.bfloat16
    if name == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    raise UserError(f"unknown precision {name!r}; choose one of {', '.join(PRECISION_CHOICES)}")


def autocast(device, dtype):
    """Mixed precision for the forward pass when ``dtype`` is set, else nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
