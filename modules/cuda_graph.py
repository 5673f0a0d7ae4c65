"""The training step replayed from a CUDA graph: a GPU-only detail of the loop.

On a GPU, one LeNet step at batch 64 is a few dozen tiny kernels that finish
faster than Python can launch them, so the GPU mostly waits on the host.  A
CUDA graph records the launches of one whole step (forward, loss, backward,
the optimizer's update) once, and replays them all with a single call.

What a recorded step reads and writes must stay at fixed addresses, so each
batch is copied into static input and target tensors, and the loss and the
predictions are read from static outputs.  The first few full batches train
eagerly on a side stream (CUDA needs that warm-up before recording); the
batch that follows is recorded, then replayed, and so is every later full
batch.  A batch of another size (the last, partial one) trains eagerly.  The
optimizer must be created with ``capturable=True`` and, where a schedule
changes it, the learning rate held as a tensor (``recipe_parts`` does both).
"""

import torch

from modules.training import training_step

# eager steps on a side stream before recording, as PyTorch's CUDA graph docs do
WARMUP_STEPS = 3


def graph_problem(device):
    """Why a CUDA graph cannot be used on ``device``, or None if it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA GPU; this run is on {device.type}"
    return None


class GraphedTrainingStep:
    """``training_step`` for full batches, recorded once and then replayed.

    With ``record=False`` nothing is recorded: every step runs eagerly
    through the same static buffers (how the tests check this class on a CPU).
    """

    def __init__(self, model, lossFn, opt, amp_dtype=None, record=True):
        self.model, self.lossFn, self.opt, self.amp_dtype = model, lossFn, opt, amp_dtype
        self.record = record
        self.graph = None
        self.static = None  # (x, y) buffers, shaped like the first batch
        self.outputs = None  # (loss, pred) written by every full-batch step
        self.eagerSteps = 0
        self.problem = None  # why recording failed, if it did

    def __call__(self, x, y):
        """Train on (x, y); returns (loss, pred), valid until the next call."""
        if self.static is None:
            self.static = (torch.empty_like(x), torch.empty_like(y))
        (staticX, staticY) = self.static
        if x.shape != staticX.shape or y.shape != staticY.shape:
            return self._eager(x, y)  # the partial last batch

        staticX.copy_(x)
        staticY.copy_(y)
        if self.graph is None and self.record and self.eagerSteps >= WARMUP_STEPS:
            self._record()
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        self.outputs = self._eager(staticX, staticY, warmup=self.record)
        return self.outputs

    def _eager(self, x, y, warmup=False):
        self.eagerSteps += 1
        if not warmup:
            # once recorded, the graph owns the gradient tensors: zero them, keep them
            return training_step(self.model, self.lossFn, self.opt, x, y, self.amp_dtype,
                                 for_graph=self.graph is not None)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            outputs = training_step(self.model, self.lossFn, self.opt, x, y, self.amp_dtype,
                                    for_graph=True)
        torch.cuda.current_stream().wait_stream(side)
        return outputs

    def _record(self):
        (staticX, staticY) = self.static
        graph = torch.cuda.CUDAGraph()
        # the recorded backward pass allocates the gradients in the graph's memory
        self.opt.zero_grad(set_to_none=True)
        try:
            with torch.cuda.graph(graph):
                self.outputs = training_step(self.model, self.lossFn, self.opt, staticX,
                                             staticY, self.amp_dtype, for_graph=True)
        except RuntimeError as error:
            # train on eagerly, with the reason on record for the console
            self.record = False
            self.problem = " ".join(str(error).split())[:200]
            return
        self.graph = graph
