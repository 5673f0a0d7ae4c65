"""Everything to check on a CUDA machine, in one run: one table of figures.

Runs, each as a fresh process started as a user would, on the real data:
the test suite; the imports every run pays for; `python train.py` (the
tutorial recipe); `--recipe improved` on a fresh seed; the tutorial's own train.py for
the side-by-side; and `python predict.py` on ten test images.  Then prints
one table: wall time, training time and test accuracy of each.

    python benchmarks/gpu_check.py --data-dir DATA --tutorial-dir TUTORIAL \\
        [--seed 103] [--skip tests tutorial-code ...]

DATA must be writable and hold KMNIST/raw/ (the four .gz files); TUTORIAL
holds the tutorial's train.py.  For the device machine, copy both into the
git-ignored device-inputs/ and carry it:

    python benchmarks/gpu_check.py --data-dir device-inputs/data \\
        --tutorial-dir device-inputs/tutorial

Without a CUDA GPU it says so and stops: the CPU figures come from
compare_with_tutorial.py and compare_recipes.py.
"""

import argparse
import os
import re
import sys
import tempfile

from compare_with_tutorial import ACCURACY, ROOT  # the report's accuracy line, both scripts
from timed_run import timed_run

TRAINING = re.compile(r"total time taken to train the model: ([0-9.]+)s")
TRAIN_LOSS = re.compile(r"^Train loss: ([0-9.]+)", re.MULTILINE)
PYTEST_SUMMARY = re.compile(r"^=+ (.*(passed|failed).*) in [0-9.]+s", re.MULTILINE)


def planned_runs(args, out):
    """(name, command, folder to run in) for every check, in order."""
    python = sys.executable
    ours = [python, os.path.join(ROOT, "train.py"), "--data-dir", args.data_dir,
            "--no-download", "--device", "cuda"]

    def train(name, *options):
        folder = os.path.join(out, name)
        return (name, [*ours, *options, "-m", os.path.join(folder, "model.pth"),
                       "-p", os.path.join(folder, "plot.png")], ROOT)

    return [
        ("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], ROOT),
        ("imports", [python, "-c", "import torch, torchvision, sklearn, cv2, matplotlib"], ROOT),
        train("tutorial"),
        train("improved", "--recipe", "improved", "--seed", str(args.seed)),
        ("tutorial-code", [python, "train.py", "-m", os.path.join(out, "tutorial-code.pth"),
                           "-p", os.path.join(out, "tutorial-code.png"),
                           "--data", args.data_dir], args.tutorial_dir),
        ("predict", [python, os.path.join(ROOT, "predict.py"), "-m",
                     os.path.join(out, "tutorial", "model.pth"), "--data-dir", args.data_dir,
                     "--no-download", "--no-display", "--device", "cuda",
                     "-o", os.path.join(out, "predictions.png")], ROOT),
    ]


def run(name, command, cwd, out):
    log = os.path.join(out, f"{name}.log")
    result = timed_run(command, log, cwd=cwd)
    wall = result.wall
    training = TRAINING.search(result.stdout)
    accuracy = ACCURACY.search(result.stdout)
    summary = PYTEST_SUMMARY.search(result.stdout)
    note = summary.group(1) if summary else ("" if result.returncode == 0
                                             else f"exit {result.returncode}, see {log}")
    losses = TRAIN_LOSS.findall(result.stdout)[:3]
    return {"name": name, "wall": wall, "exit": result.returncode, "losses": ", ".join(losses),
            "training": float(training.group(1)) if training else None,
            "accuracy": float(accuracy.group(1)) if accuracy else None, "note": note}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="writable folder holding KMNIST/raw/")
    ap.add_argument("--tutorial-dir", required=True, help="folder with the tutorial's train.py")
    ap.add_argument("--seed", type=int, default=103, help="a seed no recipe was chosen on")
    ap.add_argument("--skip", nargs="*", default=[], help="names of checks to leave out")
    args = ap.parse_args()
    args.data_dir = os.path.abspath(args.data_dir)
    args.tutorial_dir = os.path.abspath(args.tutorial_dir)

    import torch  # only here: --help should not wait for it

    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: this script checks the CUDA path only")
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU cores", flush=True)
    out = tempfile.mkdtemp(prefix="gpu-check-")
    print(f"outputs and logs in {out}", flush=True)

    rows = []
    for (name, command, cwd) in planned_runs(args, out):
        if name in args.skip:
            continue
        rows.append(run(name, command, cwd, out))
        row = rows[-1]
        print(f"  {name}: {row['wall']:.1f} s {row['note']}", flush=True)

    def show(value, form):
        return form.format(value) if value is not None else ""

    print("\n| run | wall | training | test accuracy | train loss, epochs 1-3 | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['name']} | {row['wall']:.1f} s | {show(row['training'], '{:.1f} s')} | "
              f"{show(row['accuracy'], '{:.2%}')} | {row['losses']} | {row['note']} |")
    sys.exit(1 if any(row["exit"] for row in rows) else 0)


if __name__ == "__main__":
    main()
