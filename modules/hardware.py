"""The hardware side of training: where the model runs (CUDA, Apple's MPS or
the CPU), in which arithmetic, the CPU's memory reuse, and CUDA graphs.

Memory reuse: glibc hands big allocations (a 64x20x24x24 activation is 2.9 MB) straight
to the kernel with mmap and returns them on free, so every training step
page-faults thousands of fresh pages back in (measured here: 2.2 million
page faults in one epoch, 0.3 million with reuse).  Keeping freed memory in
the heap for reuse removed that churn and made an epoch 24% shorter (12.34
-> 9.43 s, docs/performance.md); the memory stays with the process, which
for a training run is what we want anyway.

CUDA graphs (--cuda-graph): on a GPU, one LeNet step at batch 64 is a few dozen tiny kernels that finish
faster than Python can launch them, so the GPU mostly waits on the host.  A
CUDA graph records the kernels of the forward and the backward pass once and
replays each with a single call.  PyTorch's ``make_graphed_callables`` does
the recording; ``record_training_graph`` decides when its graph is used.

Only the model's forward and backward pass are recorded, from outside the
training step, which stays as train.py writes it.  The optimizer and the
schedule run as usual after the replayed backward pass: a recorded
optimizer would keep the learning rate and Adam's betas it saw while
recording (the one-cycle schedule changes both every step), while the
replayed passes read nothing but the batch and the weights, which are
updated in place.

A graph replays one batch shape only: full training batches go through it,
while the last, smaller batch and evaluation run the model as usual.
"""

import contextlib
import ctypes
import ctypes.util
import re
import sys

import torch

from modules.cli import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def choose_device(name="auto"):
    """Return the torch.device for ``name`` ("auto" picks the best one present).

    "auto" asks ``torch.accelerator`` for the machine's accelerator, so CUDA
    is used where present, then MPS, then the CPU.
    """
    if name == "auto":
        if torch.accelerator.is_available():
            accelerator = torch.accelerator.current_accelerator()
            if accelerator.type in ("cuda", "mps"):
                return torch.device(accelerator.type)
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU "
                        "(use --device auto or --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for, but MPS is not available on this "
                        "machine (use --device auto or --device cpu)")
    return torch.device(name)  # argparse's choices allow only these names


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
    if name == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if name == "bf16":
        if device.type == "cuda" and not cuda_has_native_bf16():
            raise UserError("--precision bf16 was asked for, but this GPU does not compute "
                            "bfloat16 in hardware (it would only emulate it, slowly); use "
                            "--precision fp32")
        return torch.bfloat16
    return None  # fp32 (argparse's choices allow nothing else)


def autocast(device, dtype):
    """Mixed precision for the forward pass when ``dtype`` is set, else nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def graph_problem(device):
    """Why a CUDA graph cannot be used on ``device``, or None if it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA GPU; this run is on {device.type}"
    return None


def record_training_graph(model, batch_shape, amp_dtype=None):
    """Record ``model``'s forward and backward pass for training batches of
    ``batch_shape`` and make its forward replay them for such batches.

    Call it on a CUDA model (``graph_problem`` says whether one can be used)
    before training.  Returns None, or why recording failed; the model then
    trains as usual.
    """
    eager_forward = model.forward
    sample = torch.zeros(batch_shape, device=next(model.parameters()).device)
    sample = sample.contiguous(memory_format=torch.channels_last)  # as the loop feeds it
    model.train()
    try:
        # mixed precision is recorded as it will run, on the model's device
        # (PyTorch records it only with autocast's weight cache off)
        with torch.autocast(sample.device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None, cache_enabled=False):
            graphed = torch.cuda.make_graphed_callables(model, (sample,))
    except (RuntimeError, AssertionError) as error:
        model.forward = eager_forward
        return " ".join(str(error).split())[:300] or type(error).__name__
    graphed_forward = graphed.forward

    def forward(x):
        if model.training and x.shape == sample.shape and x.dtype == sample.dtype:
            return graphed_forward(x)
        return eager_forward(x)

    model.forward = forward
    return None
