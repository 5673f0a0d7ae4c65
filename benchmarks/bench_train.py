"""Training throughput: train.py's loop against the tutorial's way, step by step.

Measures one training epoch plus its validation pass (45,000 + 15,000 images,
batch 64, Adam 1e-3, the same LeNet and seed) for each of these variants,
each adding one change to the one before it:

  tutorial      the tutorial's feeding: torchvision KMNIST with ToTensor, a
                per-item DataLoader, default memory layout, a .item() host
                sync every batch, evaluation in batches of 64
  +in-memory    the data set as one uint8 tensor, whole batches per
                DataLoader step (KMNISTTensors + __getitems__)
  +channels-last  the convolutions in channels-last memory layout
  +our-loop     train.py's loop: loss and accuracy kept on the device and
                read once per epoch, evaluation in batches of 1000 under
                inference_mode, fused Adam
  +malloc-reuse freed memory kept for reuse instead of page-faulted back
  +bf16         bfloat16 mixed precision (only where the CPU has it natively;
                train.py's default there) = train.py as shipped

Each variant runs in a fresh process (the malloc setting is process-wide);
the median over --repeats is printed with images/s, GFLOP/s achieved and
the fraction of this machine's measured float32 matmul peak.

    python benchmarks/bench_train.py [--data-dir data] [--repeats 3]

Without the real data set in --data-dir it runs on generated data of the
same size (and says so): throughput does not depend on what the pixels show.
"""

import argparse
import json
import os
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

from modules.data import KMNISTTensors, load_kmnist, whole_batch  # noqa: E402
from modules.lenet import LeNet  # noqa: E402
from modules.performance import (choose_precision, cpu_has_native_bf16,  # noqa: E402
                                 keep_freed_memory_for_reuse)
from modules.recipes import tutorial_parts  # noqa: E402
from modules.training import evaluate, train_one_epoch  # noqa: E402

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
    if level >= VARIANTS.index("+malloc-reuse"):
        keep_freed_memory_for_reuse()
    torch.manual_seed(seed)
    split = torch.Generator().manual_seed(42)
    shuffle = torch.Generator().manual_seed(seed)
    if level == 0:
        data = KMNIST(root=data_dir, train=True, download=False, transform=ToTensor())
        train, val = random_split(data, [45_000, len(data) - 45_000], generator=split)
        trainLoader = DataLoader(train, shuffle=True, batch_size=BATCH_SIZE, generator=shuffle)
        valLoader = DataLoader(val, batch_size=BATCH_SIZE)
    else:
        data = KMNISTTensors(load_kmnist(data_dir, train=True, download=False))
        train, val = random_split(data, [45_000, len(data) - 45_000], generator=split)
        trainLoader = DataLoader(train, shuffle=True, batch_size=BATCH_SIZE, generator=shuffle,
                                 collate_fn=whole_batch)
        valLoader = DataLoader(val, batch_size=BATCH_SIZE if level < 3 else 1000,
                               collate_fn=whole_batch)
    channels_last = level >= VARIANTS.index("+channels-last")
    model = LeNet(1, 10)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    device = torch.device("cpu")

    start = time.perf_counter()
    if level < VARIANTS.index("+our-loop"):
        tutorial_epoch(model, trainLoader, valLoader, Adam(model.parameters(), lr=1e-3),
                       nn.NLLLoss(), channels_last)
    else:
        parts = tutorial_parts(model, lr=1e-3, device=device)
        amp = choose_precision("auto", device) if variant == "+bf16" else None
        train_one_epoch(model, trainLoader, parts.lossFn, parts.opt, device, amp_dtype=amp)
        evaluate(model, valLoader, device, amp_dtype=amp)
    return time.perf_counter() - start, len(train), len(val)


def find_or_make_data(data_dir):
    """(data dir, True if real): the real KMNIST if present, else generated files."""
    try:
        load_kmnist(data_dir, train=True, download=False)
        return data_dir, True
    except Exception:  # noqa: BLE001 - anything unusable: fall back to generated data
        pass
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from kmnist_files import write_kmnist

    generated = tempfile.mkdtemp(prefix="kmnist-bench-")
    write_kmnist(generated, n_train=60_000, n_test=100)
    return generated, False


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

    data_dir, real = find_or_make_data(args.data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU bf16 in hardware: {cpu_has_native_bf16()}")
    print("data: " + (f"the real KMNIST in {data_dir}" if real else
                      f"GENERATED data of KMNIST's size (no real data in {args.data_dir}"
                      "/KMNIST/raw); throughput only"))
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
