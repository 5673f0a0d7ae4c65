"""Training throughput: our loop against the tutorial's way of feeding LeNet.

Runs N epochs of train.py's loop (the data set held as one tensor, whole
batches per DataLoader step, channels-last convolutions, one host sync per
epoch) and, in the same process on the same data with the same model and
seed, N epochs fed the tutorial's way (torchvision KMNIST with ToTensor,
per-item DataLoader, default memory layout, a .item() sync every batch).
Prints both images/s, their ratio, the GFLOP/s each achieves and what
fraction that is of this machine's measured float32 matmul peak.

    python benchmarks/bench_train.py [--epochs 1] [--data-dir data] [--repeats 3]

Without the real data set in --data-dir it runs on generated data of the
same size (and says so): throughput does not depend on what the pixels show.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from torch import nn
from torch.optim import Adam
from torch.utils.data import DataLoader, random_split
from torchvision.datasets import KMNIST
from torchvision.transforms import ToTensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modules.data import KMNISTTensors, load_kmnist, whole_batch  # noqa: E402
from modules.device import choose_device  # noqa: E402
from modules.lenet import LeNet  # noqa: E402
from modules.training import evaluate, train_one_epoch  # noqa: E402

# multiply-adds of one LeNet forward pass on a 28x28 image, times 2 for FLOPs:
# conv1 24*24*20*25, conv2 8*8*50*500, fc1 800*500, fc2 500*10
FORWARD_FLOPS = 2 * (24 * 24 * 20 * 25 + 8 * 8 * 50 * 500 + 800 * 500 + 500 * 10)
# a training step costs about three forward passes (forward, two backward GEMMs)
TRAIN_FLOPS = 3 * FORWARD_FLOPS
BATCH_SIZE = 64


def matmul_peak_gflops(size=1024, seconds=2.0):
    """Measured float32 matmul throughput of this machine with torch's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size ** 3 * count / (time.perf_counter() - start) / 1e9


def find_or_make_data(data_dir):
    """(data dir, True if real): the real KMNIST if present, else generated files."""
    try:
        load_kmnist(data_dir, train=True, download=False)
        load_kmnist(data_dir, train=False, download=False)
        return data_dir, True
    except Exception:
        pass
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests"))
    from kmnist_files import write_kmnist

    generated = tempfile.mkdtemp(prefix="kmnist-bench-")
    write_kmnist(generated, n_train=60_000, n_test=10_000)
    return generated, False


def ours(data_dir, epochs, device, seed):
    """train.py's loop; returns (seconds per epoch list, train images per epoch)."""
    torch.manual_seed(seed)
    data = KMNISTTensors(load_kmnist(data_dir, train=True, download=False), device)
    train, val = random_split(data, [45_000, len(data) - 45_000],
                              generator=torch.Generator().manual_seed(42))
    trainLoader = DataLoader(train, batch_size=BATCH_SIZE, shuffle=True, collate_fn=whole_batch,
                             generator=torch.Generator().manual_seed(seed))
    valLoader = DataLoader(val, batch_size=1000, collate_fn=whole_batch)
    model = LeNet(1, 10).to(device, memory_format=torch.channels_last)
    opt, lossFn = Adam(model.parameters(), lr=1e-3), nn.NLLLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_one_epoch(model, trainLoader, lossFn, opt, device)
        evaluate(model, valLoader, device)
        times.append(time.perf_counter() - start)
    return times, len(train), len(val)


def tutorials_way(data_dir, epochs, device, seed):
    """The tutorial's feeding and loop, as in its train.py."""
    torch.manual_seed(seed)
    data = KMNIST(root=data_dir, train=True, download=False, transform=ToTensor())
    train, val = random_split(data, [45_000, len(data) - 45_000],
                              generator=torch.Generator().manual_seed(42))
    trainLoader = DataLoader(train, shuffle=True, batch_size=BATCH_SIZE)
    valLoader = DataLoader(val, batch_size=BATCH_SIZE)
    model = LeNet(1, 10).to(device)
    opt, lossFn = Adam(model.parameters(), lr=1e-3), nn.NLLLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        totalTrainLoss, trainCorrect = 0, 0
        for x, y in trainLoader:
            x, y = x.to(device), y.to(device)
            pred = model(x)
            loss = lossFn(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            totalTrainLoss += loss
            trainCorrect += (pred.argmax(1) == y).type(torch.float).sum().item()
        with torch.no_grad():
            model.eval()
            totalValLoss, valCorrect = 0, 0
            for x, y in valLoader:
                x, y = x.to(device), y.to(device)
                pred = model(x)
                totalValLoss += lossFn(pred, y)
                valCorrect += (pred.argmax(1) == y).type(torch.float).sum().item()
        times.append(time.perf_counter() - start)
    return times, len(train), len(val)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1, help="epochs per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements of each (median)")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    ap.add_argument("--skip-tutorial", action="store_true", help="measure only our loop")
    args = ap.parse_args()

    device = choose_device(args.device)
    data_dir, real = find_or_make_data(args.data_dir)
    print(f"device: {device.type}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("data: " + ("the real KMNIST in " + data_dir if real else
                      "GENERATED data of KMNIST's size (no real data in "
                      f"{args.data_dir}/KMNIST/raw); throughput only"))
    peak = matmul_peak_gflops() if device.type == "cpu" else float("nan")
    print(f"measured float32 matmul peak: {peak:.1f} GFLOP/s")

    results = {}
    for name, run in (("ours", ours), ("tutorial's way", tutorials_way)):
        if name != "ours" and args.skip_tutorial:
            continue
        per_epoch = []
        for repeat in range(args.repeats):
            times, n_train, n_val = run(data_dir, args.epochs, device, seed=repeat)
            per_epoch += times
        seconds = statistics.median(per_epoch)
        images = (n_train + n_val) / seconds
        gflops = (n_train * TRAIN_FLOPS + n_val * FORWARD_FLOPS) / seconds / 1e9
        results[name] = seconds
        print(f"{name:>15}: {seconds:7.2f} s/epoch (median of {len(per_epoch)}), "
              f"{images:8.0f} images/s, {gflops:6.1f} GFLOP/s = {gflops / peak:.0%} of peak")
    if len(results) == 2:
        ratio = results["ours"] / results["tutorial's way"]
        print(f"ours takes {ratio:.2f}x the tutorial's time per epoch "
              f"({1 / ratio:.1f}x the throughput)")


if __name__ == "__main__":
    main()
