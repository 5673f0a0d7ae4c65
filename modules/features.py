"""What LeNet's convolution layers see: their feature maps for an image."""

import torch


@torch.inference_mode()
def feature_maps(model, images):
    """The ReLU outputs of ``conv1`` (20 maps of 24x24) and ``conv2`` (50 maps of
    8x8) for a batch of NCHW ``images``, as float32 CPU tensors.

    This is the start of LeNet's own forward pass, stopped twice on the way:
    what each learned filter responds to, before pooling shrinks it.
    """
    first = model.relu1(model.conv1(images))
    second = model.relu2(model.conv2(model.maxpool1(first)))
    return first.float().cpu(), second.float().cpu()
