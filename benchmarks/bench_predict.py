"""How long predict.py takes, and how much memory it needs, for many images.

Each case is one `python predict.py ... --no-display` in a process of its
own, timed from start to exit, with its peak resident memory as the kernel
counted it for that process (os.wait4):

- `--num 10000`: 10,000 test images drawn at random with replacement, as
  the tutorial draws them (about 6,300 distinct ones);
- `--image FOLDER`: a folder of 10,000 small PNG files, test characters
  drawn black on white paper at 64x64 as a scan would give them.

    python benchmarks/bench_predict.py [-m output/model.pth] [--data-dir data]

Needs a trained model and the KMNIST test files.  The goal (issue 27): at
most 15 s and a peak under 1.5 GB for each case, on 2 CPU cores.
"""

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402

from modules.data import load_kmnist  # noqa: E402
from timed_run import timed_run  # noqa: E402




def write_scans(data_dir, folder, count):
    """``count`` test characters as black-on-white 64x64 PNG files."""
    images = load_kmnist(data_dir, train=False, download=False).data.numpy()
    for i in range(count):
        picture = cv2.resize(255 - images[i % len(images)], (64, 64),
                             interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(os.path.join(folder, f"scan-{i:05d}.png"), picture)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "output", "model.pth"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data"))
    ap.add_argument("--count", type=int, default=10_000, help="images in each case")
    args = ap.parse_args()
    predict = [sys.executable, os.path.join(ROOT, "predict.py"), "-m", args.model,
               "--no-display", "--no-download"]
    with tempfile.TemporaryDirectory() as scratch:
        scans = os.path.join(scratch, "scans")
        os.makedirs(scans)
        write_scans(args.data_dir, scans, args.count)
        grid = os.path.join(scratch, "grid.png")
        cases = {f"--num {args.count}": ["--data-dir", args.data_dir, "--num", str(args.count)],
                 f"--image (a folder of {args.count:,} PNG files)": ["--image", scans]}
        for name, options in cases.items():
            command = [*predict, *options, "-o", grid]
            result = timed_run(command, os.path.join(scratch, "log.txt"), cwd=ROOT)
            if result.returncode != 0:
                sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
            print(f"{name:>42}: {result.wall:6.1f} s, peak {result.peak_mb:7.0f} MB, "
                  f"{len(result.stdout.splitlines()):,} lines printed")


if __name__ == "__main__":
    main()
