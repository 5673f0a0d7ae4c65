"""--cuda-graph: LeNet's forward and backward pass recorded once, then replayed.

On a GPU, one LeNet step at batch 64 is a few dozen tiny kernels that finish
faster than Python can launch them, so the GPU mostly waits on the host.  A
CUDA graph records the kernels of the forward and the backward pass once and
replays each with a single call.  PyTorch's ``make_graphed_callables`` does
the recording; this file decides when its graph is used.

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

import torch


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
