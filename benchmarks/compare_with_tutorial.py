"""Side by side: the tutorial's own train.py against ours, whole runs, same data.

Runs the two scripts alternately (tutorial, ours, tutorial, ours, ...) so
that both see the same machine conditions, and prints each run's wall time
and test accuracy, then the medians, means and the ratio of median wall
times.  Every run is a fresh process, as a user would start it.

    python benchmarks/compare_with_tutorial.py --tutorial-dir ../shared/bench/tutorial \\
        --data-dir data [--runs 3] [--epochs 10]

The tutorial's script is not seeded (its accuracy varies run to run); ours
is given seeds 42, 43, 44, ...  Both need the real data set in --data-dir
(KMNIST/raw/, writable: torchvision extracts the .gz files there).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCURACY = re.compile(r"^\s*accuracy\s+([0-9.]+)\s+\d+\s*$", re.MULTILINE)


def run(command, cwd, log):
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with open(log, "w") as f:
        f.write(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    found = ACCURACY.search(result.stdout)
    return wall, float(found.group(1)) if found else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tutorial-dir", required=True, help="folder with the tutorial's train.py")
    ap.add_argument("--data-dir", default="data", help="writable folder holding KMNIST/raw/")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data_dir)
    out = tempfile.mkdtemp(prefix="side-by-side-")
    print(f"outputs and logs in {out}")

    walls = {"tutorial": [], "ours": []}
    accuracies = {"tutorial": [], "ours": []}
    for i in range(args.runs):
        tutorial = [sys.executable, "train.py", "-m", f"{out}/tutorial{i}.pth",
                    "-p", f"{out}/tutorial{i}.png", "--data", data_dir,
                    "--epochs", str(args.epochs)]
        ours = [sys.executable, os.path.join(ROOT, "train.py"), "-m", f"{out}/ours{i}/model.pth",
                "-p", f"{out}/ours{i}/plot.png", "--data-dir", data_dir, "--no-download",
                "--epochs", str(args.epochs), "--seed", str(42 + i)]
        for name, command, cwd in (("tutorial", tutorial, args.tutorial_dir),
                                   ("ours", ours, ROOT)):
            wall, accuracy = run(command, cwd, os.path.join(out, f"{name}{i}.log"))
            walls[name].append(wall)
            accuracies[name].append(accuracy)
            print(f"run {i + 1} {name:>8}: {wall:7.1f} s wall, test accuracy {accuracy:.4f}",
                  flush=True)

    for name in ("tutorial", "ours"):
        spread = statistics.stdev(accuracies[name]) if args.runs > 1 else 0.0
        print(f"{name:>8}: median {statistics.median(walls[name]):6.1f} s wall, "
              f"accuracy mean {statistics.mean(accuracies[name]):.4f} (sd {spread:.4f})")
    ratio = statistics.median(walls["ours"]) / statistics.median(walls["tutorial"])
    print(f"ours / tutorial wall time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
