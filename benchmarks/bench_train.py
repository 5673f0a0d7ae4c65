"""Training throughput: train.py's loop against the tutorial's way, step by step.

Measures one training epoch plus its validation pass (45,000 + 15,000 images,
batch 64, Adam 1e-3, the same LeNet and seed) for each of these variants,
each adding one change to the one before it:

  tutorial      the tutorial's feeding: torchvision KMNIST with ToTensor, a
                per-item DataLoader, default memory layout, a .item() host
                sync every batch, evaluation in batches of 64
  +in-memory    the data set as one uint8 tensor, whole batches per
                DataLoader step (KMNISTTensors + a BatchSampler, data.batches)
  +channels-last  the convolutions in channels-last memory layout
  +our-loop     train.py itself (its main(), one epoch, --precision fp32,
                without the malloc setting): loss and accuracy kept on the
                device and read once per epoch, evaluation in batches of 1000
                under inference_mode, fused Adam
  +malloc-reuse the same, with freed memory kept for reuse
  +bf16         the same, with bfloat16 mixed precision (only where the CPU
                has it natively; train.py's default there) = train.py as shipped

The first three rows run the tutorial's loop as written below; the last
three run train.py's own main() and read the epoch's time from its console
line.  Each variant runs in a fresh process (the malloc setting is
process-wide); the median over --repeats is printed with images/s, GFLOP/s
achieved and the fraction of this machine's measured float32 matmul peak.

    python benchmarks/bench_train.py [--data-dir data] [--repeats 3]

Needs the real data set in --data-dir (KMNIST/raw/, writable).
"""

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.optim import Adam  # noqa: E402
from torch.utils.data import DataLoader, random_split  # noqa: E402
from torchvision.datasets import KMNIST  # noqa: E402
from torchvision.transforms import ToTensor  # noqa: E402

import train  # noqa: E402
from modules.data import KMNISTTensors, batches, load_kmnist  # noqa: E402
from modules.console import UserError  # noqa: E402
from modules.lenet import LeNet  # noqa: E402
from modules import hardware  # noqa: E402
from modules.hardware import choose_precision, cpu_has_native_bf16  # noqa: E402

VARIANTS = ("tutorial", "+in-memory", "+channels-last", "+our-loop", "+malloc-reuse", "+bf16")
# multiply-adds of one LeNet forward pass on a 28x28 image, times 2 for FLOPs:
# conv1 24*24*20*25, conv2 8*8*50*500, fc1 800*500, fc2 500*10
FORWARD_FLOPS = 2 * (24 * 24 * 20 * 25 + 8 * 8 * 50 * 500 + 800 * 500 + 500 * 10)
# a training step costs about three forward passes (forward, two backward GEMMs)
TRAIN_FLOPS = 3 * FORWARD_FLOPS
BATCH_SIZE = 64


def matmul_peak_gflops(size=1024, seconds=3.0):
    """Measured float32 matmul throughput with torch's threads (best of 3 rounds)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            count += 1
        best = max(best, 2 * size ** 3 * count / (time.perf_counter() - start) / 1e9)
    return best


def tutorial_epoch(model, trainLoader, valLoader, opt, lossFn, channels_last):
    """The tutorial's loop body, as its train.py writes it."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.train()
    totalTrainLoss, trainCorrect = 0, 0
    for x, y in trainLoader:
        pred = model(x.contiguous(memory_format=layout))
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
            pred = model(x.contiguous(memory_format=layout))
            totalValLoss += lossFn(pred, y)
            valCorrect += (pred.argmax(1) == y).type(torch.float).sum().item()


def measure(variant, data_dir, seed=0):
    """Seconds for one epoch (train + validation) of ``variant``, in this process."""
    level = VARIANTS.index(variant)
    if level >= VARIANTS.index("+our-loop"):
        return measure_train_py(variant, data_dir, seed)
    torch.manual_seed(seed)
    split = torch.Generator().manual_seed(42)
    shuffle = torch.Generator().manual_seed(seed)
    if level == 0:
        data = KMNIST(root=data_dir, train=True, download=False, transform=ToTensor())
    else:
        data = KMNISTTensors(load_kmnist(data_dir, train=True, download=False))
    (trainSet, valSet) = random_split(data, [45_000, len(data) - 45_000], generator=split)
    if level == 0:
        trainLoader = DataLoader(trainSet, shuffle=True, batch_size=BATCH_SIZE, generator=shuffle)
        valLoader = DataLoader(valSet, batch_size=BATCH_SIZE)
    else:  # a whole batch per indexing operation
        trainLoader = batches(trainSet, BATCH_SIZE, shuffle=True, generator=shuffle)
        valLoader = batches(valSet, BATCH_SIZE)
    channels_last = level >= VARIANTS.index("+channels-last")
    model = LeNet(1, 10)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    start = time.perf_counter()
    tutorial_epoch(model, trainLoader, valLoader, Adam(model.parameters(), lr=1e-3),
                   nn.NLLLoss(), channels_last)
    return time.perf_counter() - start, len(trainSet), len(valSet)


def measure_train_py(variant, data_dir, seed):
    """One epoch of train.py's own main(); its console line gives the time."""
    if variant == "+our-loop":  # the same loop, without the malloc setting
        hardware.keep_freed_memory_for_reuse = lambda: False
    precision = "auto" if variant == "+bf16" else "fp32"
    out = tempfile.mkdtemp(prefix="bench-train-")
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        train.main(["--epochs", "1", "--seed", str(seed), "--precision", precision,
                    "--device", "cpu", "--data-dir", data_dir, "--no-download",
                    "-m", os.path.join(out, "model.pth"), "-p", os.path.join(out, "plot.png")])
    seconds = float(re.search(r"total time taken to train the model: ([0-9.]+)s",
                              console.getvalue()).group(1))
    return seconds, 45_000, 15_000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data", help="folder holding KMNIST/raw/")
    ap.add_argument("--repeats", type=int, default=3, help="processes per variant (median)")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one child run
    args = ap.parse_args()

    if args.variant:  # a child process: measure one variant, report as JSON
        seconds, n_train, n_val = measure(args.variant, args.data_dir)
        print(json.dumps({"seconds": seconds, "train": n_train, "val": n_val}))
        return

    data_dir = args.data_dir
    try:
        load_kmnist(data_dir, train=True, download=False)
    except UserError as error:
        sys.exit(f"this benchmark needs the real KMNIST training set: {error}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU bf16 in hardware: {cpu_has_native_bf16()}")
    print(f"data: the real KMNIST in {data_dir}")
    peak = matmul_peak_gflops()
    print(f"measured float32 matmul peak: {peak:.1f} GFLOP/s")
    print(f"one epoch = {45_000} training + {15_000} validation images, batch {BATCH_SIZE}; "
          f"median of {args.repeats} processes each")

    baseline = None
    for variant in VARIANTS:
        if variant == "+bf16" and choose_precision("auto", torch.device("cpu")) is None:
            print(f"{variant:>15}: skipped (no native bf16 on this CPU; train.py uses fp32)")
            continue
        runs = []
        for _ in range(args.repeats):
            child = subprocess.run([sys.executable, __file__, "--variant", variant,
                                    "--data-dir", data_dir], capture_output=True, text=True)
            if child.returncode != 0:
                sys.exit(child.stderr)
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in runs)
        n_train, n_val = runs[0]["train"], runs[0]["val"]
        gflops = (n_train * TRAIN_FLOPS + n_val * FORWARD_FLOPS) / seconds / 1e9
        baseline = baseline or seconds
        print(f"{variant:>15}: {seconds:6.2f} s/epoch, {(n_train + n_val) / seconds:7.0f} "
              f"images/s, {gflops:6.1f} GFLOP/s = {gflops / peak:4.0%} of peak, "
              f"{seconds / baseline:.2f}x the tutorial's time", flush=True)


if __name__ == "__main__":
    main()
