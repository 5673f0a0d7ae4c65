"""The training loop and evaluation, shared by train.py and the benchmark.

Kept fast on the CPU without hiding anything: the running loss and the
number of correct predictions stay on the device as tensors and are read
once per epoch (reading them per batch with ``.item()`` would make the
host wait for every batch), and evaluation runs in large batches under
``torch.inference_mode``.
"""

import random
import sys

import numpy as np
import torch
from torch.nn import functional as F

from modules.performance import autocast

try:  # a progress bar is a nicety, not a requirement
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


def seed_everything(seed):
    """Seed Python, NumPy and PyTorch: same seed on the CPU => same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress(iterable, description, total=None):
    """A per-batch progress bar, shown only on a terminal so logs stay clean."""
    if tqdm is None or not sys.stderr.isatty():
        return iterable
    return tqdm(iterable, desc=description, total=total, leave=False, unit="batch",
                dynamic_ncols=True)


def training_step(model, lossFn, opt, x, y, amp_dtype=None, for_graph=False):
    """One update: forward pass, loss, then the usual three steps.

    Returns the loss and the predictions.  ``for_graph`` keeps autocast from
    caching its casts of the weights and keeps the gradient tensors where
    they are (zeroed, not freed), as a CUDA graph needs.
    """
    with autocast(x.device, amp_dtype, cache_enabled=not for_graph):
        pred = model(x)
        loss = lossFn(pred, y)
    opt.zero_grad(set_to_none=not for_graph)
    loss.backward()
    opt.step()
    return loss, pred


def train_one_epoch(model, loader, lossFn, opt, device, augment=None, scheduler=None,
                    averaged=None, amp_dtype=None, step=None, description="training"):
    """One pass over ``loader``; returns (average loss per sample, accuracy).

    ``amp_dtype`` (e.g. torch.bfloat16) runs the forward pass in mixed
    precision; the weights and their updates stay float32.  ``step`` trains
    on one batch in place of ``training_step`` (on CUDA, train.py passes the
    same step replayed from a CUDA graph: modules/cuda_graph.py).
    """
    model.train()
    totalLoss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for (x, y) in progress(loader, description, total=len(loader)):
        # a no-op for KMNISTTensors, which already lives on the device
        (x, y) = (x.to(device), y.to(device))
        if augment is not None:
            x = augment(x)
        x = x.contiguous(memory_format=torch.channels_last)

        # forward pass, loss, then the usual three steps of an update
        if step is None:
            (loss, pred) = training_step(model, lossFn, opt, x, y, amp_dtype)
        else:
            (loss, pred) = step(x, y)
        if scheduler is not None:
            scheduler.step()
        if averaged is not None:
            averaged.update_parameters(model)

        # the mean loss of a batch times its size gives the batch's total, so
        # that a smaller last batch counts for what it is; detach() keeps the
        # autograd graph from growing across the epoch
        totalLoss += loss.detach() * y.size(0)
        correct += (pred.argmax(1) == y).sum()
        seen += y.size(0)
    return totalLoss.item() / seen, correct.item() / seen


@torch.inference_mode()
def evaluate(model, loader, device, amp_dtype=None, description="evaluating"):
    """Returns (average NLL loss per sample, accuracy, log-probabilities on the CPU).

    The log-probabilities (one row of 10 per image) give the predictions
    (their argmax) and how sure the model was of each.
    """
    model.eval()
    totalLoss = torch.zeros((), device=device)
    outputs = []
    targets = []
    for (x, y) in progress(loader, description, total=len(loader)):
        (x, y) = (x.to(device), y.to(device))
        with autocast(device, amp_dtype):
            pred = model(x.contiguous(memory_format=torch.channels_last)).float()
        totalLoss += F.nll_loss(pred, y, reduction="sum")
        outputs.append(pred)
        targets.append(y)
    outputs = torch.cat(outputs)
    accuracy = (outputs.argmax(1) == torch.cat(targets)).float().mean().item()
    return totalLoss.item() / len(outputs), accuracy, outputs.cpu()
