"""Is the drawing page's "what decided" map faithful?  Two checks on KMNIST test images.

1. Deletion: erase (set to 0) the 10% of each image's ink pixels the map
   ranks most for the top class, and as many ink pixels chosen at random;
   the top class's probability must fall clearly more for the map's pixels.
2. Model randomisation (Adebayo et al., "Sanity Checks for Saliency Maps",
   NeurIPS 2018): with LeNet's weights re-initialised, the maps must change;
   reported as the Spearman rank correlation of each image's map (over its
   ink pixels) between the trained and the random network.

    python benchmarks/bench_saliency.py -m output/model.pth [--data-dir data] [--images 1000]
"""

import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from modules.checkpoint import build_model, load_checkpoint  # noqa: E402
from modules.classify import class_probabilities, decisive_pixels  # noqa: E402
from modules.data import load_kmnist  # noqa: E402
from modules.lenet import LeNet  # noqa: E402

CPU = torch.device("cpu")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "output", "model.pth"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data"))
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--share", type=float, default=0.10, help="share of the ink erased")
    args = ap.parse_args()
    model = build_model(load_checkpoint(args.model), args.model)
    torch.manual_seed(0)
    random_model = LeNet(1, 10).eval()  # the same network, re-initialised
    test = load_kmnist(args.data_dir, train=False, download=False)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(test.targets), args.images, replace=False)
    (by_map, by_chance, correlations) = ([], [], [])
    for i in picks:
        image = test.data[i].numpy().astype(np.float32) / 255
        (pixels, top, _) = decisive_pixels(model, image, CPU)
        before = class_probabilities(model, image, CPU)[top]
        ink = np.flatnonzero(image.ravel() > 0.1)
        count = max(1, round(args.share * len(ink)))
        for (drops, erased) in ((by_map, ink[np.argsort(-pixels.ravel()[ink])[:count]]),
                                (by_chance, rng.choice(ink, count, replace=False))):
            changed = image.copy().ravel()
            changed[erased] = 0
            drops.append(before - class_probabilities(model, changed.reshape(28, 28), CPU)[top])
        (random_pixels, _, _) = decisive_pixels(random_model, image, CPU)
        correlations.append(spearmanr(pixels.ravel()[ink], random_pixels.ravel()[ink])[0])
    print(f"model: {args.model}; {args.images} test images; {args.share:.0%} of each one's ink "
          "erased")
    for (name, drops) in (("the map's pixels", by_map), ("random ink pixels", by_chance)):
        print(f"  top class's probability falls, {name:>17}: mean {np.mean(drops):.3f}, "
              f"sd {np.std(drops):.3f}, median {statistics.median(drops):.3f}")
    better = np.mean(np.array(by_map) > np.array(by_chance))
    print(f"  the map's erasure hurt more than chance's on {better:.0%} of the images")
    print(f"  rank correlation, trained vs re-initialised network's map: mean "
          f"{np.nanmean(correlations):.3f}, sd {np.nanstd(correlations):.3f}")


if __name__ == "__main__":
    main()
