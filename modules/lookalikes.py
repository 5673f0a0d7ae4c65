"""What a drawing resembles: the training images LeNet itself sees as most
alike, by the cosine similarity of the 500 outputs of its first fully
connected layer (after ReLU), indexed once when the drawing page starts:
the first PER_CLASS training images of each class, a third of the 60,000,
which keeps the start to seconds (docs/pictures.md gives time and memory)."""

import time

import torch
from torch.nn import functional as F

from modules.classify import feature_maps

PER_CLASS = 2000


def features(model, images):
    """The 500 features of LeNet's fc1 (after ReLU) for NCHW ``images``."""
    return feature_maps(model, images, ("relu3",))[0]


class Lookalikes:
    """The training images (uint8 N x 28 x 28, with their labels) indexed by
    ``model``'s features, class by class; ``nearest`` finds those of a class
    nearest a drawing."""

    def __init__(self, model, images, labels, device, per_class=PER_CLASS, batch=500):
        started = time.perf_counter()
        (self.model, self.device, self.images) = (model, device, images)
        self.by_class = []  # per class: (its features, normalised; their image numbers)
        for k in range(int(labels.max()) + 1):
            numbers = torch.nonzero(labels == k)[:per_class, 0]
            self.by_class.append((F.normalize(torch.cat([
                features(model, images[numbers[i:i + batch], None].float().div(255).to(device))
                for i in range(0, len(numbers), batch)]), dim=1), numbers))
        self.seconds = time.perf_counter() - started
        self.count = sum(len(numbers) for (_, numbers) in self.by_class)
        self.megabytes = sum(block.nelement() * 4 for (block, _) in self.by_class) / 2**20

    def nearest(self, character, classes, k=3):
        """For each class in ``classes``, the indices of the ``k`` training
        images of that class nearest the 28x28 ``character`` (most alike first)."""
        query = torch.as_tensor(character, dtype=torch.float32)[None, None].to(self.device)
        query = F.normalize(features(self.model, query)[0], dim=0)
        return [numbers[(block @ query).topk(min(k, len(numbers))).indices].tolist()
                for (block, numbers) in (self.by_class[c] for c in classes)]
