"""What LeNet makes of one prepared character, as --image and --draw show it:
its class probabilities, the top classes, its feature maps, and which pixels
decided between its first and second choice."""

import numpy as np
import torch

from modules.data import CLASS_NAMES, HIRAGANA


@torch.inference_mode()
def class_probabilities(model, character, device):
    """The model's 10 class probabilities (NumPy) for one 28x28 input in [0, 1]."""
    x = torch.as_tensor(character, dtype=torch.float32)[None, None].to(device)
    return model(x).exp()[0].float().cpu().numpy()


def top_classes(probabilities, k=3):
    """Indices of the ``k`` most probable classes, most probable first."""
    return [int(i) for i in np.argsort(-np.asarray(probabilities), kind="stable")[:k]]


def describe_top(probabilities, k=3):
    """The console's summary: ``ki  [top 3: ki (き) 91.2%, ma (ま) 5.0%, ...]``."""
    top = top_classes(probabilities, k)
    ranked = ", ".join(f"{CLASS_NAMES[i]} ({HIRAGANA[i]}) {probabilities[i]:.1%}" for i in top)
    return f"{CLASS_NAMES[top[0]]}  [top {k}: {ranked}]"


@torch.inference_mode()
def feature_maps(model, images, layers=("relu1", "relu2")):
    """What LeNet's ``layers`` put out for a batch of NCHW ``images``: by
    default relu1 (20 maps of 24x24) and relu2 (50 of 8x8); float32 on the
    CPU, caught on their way through LeNet's own forward pass (so no other
    thread may run ``model`` meanwhile: the hooks would catch its maps too)."""
    maps = []
    hooks = [getattr(model, name).register_forward_hook(
        lambda _layer, _input, out: maps.append(out.float().cpu())) for name in layers]
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return maps


def decisive_pixels(model, character, device):
    """How much each pixel of one 28x28 input pushed the top class over the
    runner-up: the gradient of log p(top) - log p(runner-up) times the pixel,
    positive for the top class, negative for the runner-up, zero off the ink
    (docs/pictures.md says why this map, measured).  (map, top, runner-up)."""
    x = torch.as_tensor(character, dtype=torch.float32)[None, None].to(device).requires_grad_()
    with torch.enable_grad():
        log_probs = model(x)[0]
        (top, runner_up) = log_probs.topk(2).indices.tolist()
        (gradient,) = torch.autograd.grad(log_probs[top] - log_probs[runner_up], x)
    return (gradient * x)[0, 0].detach().float().cpu().numpy(), top, runner_up
