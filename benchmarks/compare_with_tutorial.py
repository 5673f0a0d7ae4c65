"""Side by side: the tutorial's own train.py against ours, whole runs, same data.

Runs the two scripts alternately (tutorial, ours, tutorial, ours, ...) so
that both see the same machine conditions, and prints each run's wall time
and test accuracy, then the medians, means and the ratio of median wall
times.  Every run is a fresh process, as a user would start it.

    python benchmarks/compare_with_tutorial.py --tutorial-dir ../shared/bench/tutorial \\
        --data-dir data [--runs 3] [--epochs 10] [--emulate-avx2] [--precision fp32]

--emulate-avx2 runs both programs as on a CPU with AVX2 and no AVX-512 or
bfloat16 (a typical laptop): it caps oneDNN, ATen's own kernels and MKL at
AVX2 through their environment variables.  --precision is passed to ours
(on such a CPU, auto means fp32).

The tutorial's script is not seeded (its accuracy varies run to run); ours
is given seeds 42, 43, 44, ...  Both need the real data set in --data-dir
(KMNIST/raw/, writable: torchvision extracts the .gz files there).
"""

import argparse
import os
import re
import statistics
import sys
import tempfile

from timed_run import timed_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCURACY = re.compile(r"^\s*accuracy\s+([0-9.]+)\s+\d+\s*$", re.MULTILINE)


# the instruction-set caps of PyTorch's three CPU kernel libraries
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def run(command, cwd, log, env):
    result = timed_run(command, log, cwd=cwd, env=env)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    found = ACCURACY.search(result.stdout)
    return result.wall, float(found.group(1)) if found else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tutorial-dir", required=True, help="folder with the tutorial's train.py")
    ap.add_argument("--data-dir", default="data", help="writable folder holding KMNIST/raw/")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--emulate-avx2", action="store_true",
                    help="run both as on an AVX2 CPU without AVX-512 or bfloat16")
    ap.add_argument("--precision", default="auto", help="train.py's --precision")
    args = ap.parse_args()
    env = dict(os.environ, **(AVX2_ONLY if args.emulate_avx2 else {}))
    data_dir = os.path.abspath(args.data_dir)
    out = tempfile.mkdtemp(prefix="side-by-side-")
    print(f"outputs and logs in {out}")
    cpu = ("emulated AVX2 (" + " ".join(f"{k}={v}" for k, v in AVX2_ONLY.items()) + ")"
           if args.emulate_avx2 else "as it is")
    print(f"CPU: {cpu}; ours with --precision {args.precision}")

    walls = {"tutorial": [], "ours": []}
    accuracies = {"tutorial": [], "ours": []}
    for i in range(args.runs):
        tutorial = [sys.executable, "train.py", "-m", f"{out}/tutorial{i}.pth",
                    "-p", f"{out}/tutorial{i}.png", "--data", data_dir,
                    "--epochs", str(args.epochs)]
        ours = [sys.executable, os.path.join(ROOT, "train.py"), "-m", f"{out}/ours{i}/model.pth",
                "-p", f"{out}/ours{i}/plot.png", "--data-dir", data_dir, "--no-download",
                "--epochs", str(args.epochs), "--seed", str(42 + i),
                "--precision", args.precision]
        for name, command, cwd in (("tutorial", tutorial, args.tutorial_dir),
                                   ("ours", ours, ROOT)):
            wall, accuracy = run(command, cwd, os.path.join(out, f"{name}{i}.log"), env)
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
