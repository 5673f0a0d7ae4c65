"""Side by side: `python train.py` (tutorial recipe) against other recipes.

For each seed, runs the tutorial recipe and then the others (`--recipes`,
the first is the yardstick), each as a fresh process started as a user
would, on the same data, so all see the same machine conditions.  Prints
each run's wall time, training time and test accuracy, then the means and
each recipe's wall and training time as a multiple of the yardstick's (per
seed and of the medians), and writes all of it as JSON (for
benchmarks/plot_time_to_accuracy.py).

    python benchmarks/compare_recipes.py --data-dir data --seeds 100 101 102 \\
        [--recipes tutorial improved] [--json results.json]

Needs the real data set in --data-dir (KMNIST/raw/).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modules.recipes import RECIPES  # noqa: E402
from timed_run import timed_run  # noqa: E402


def run_train(recipe, seed, data_dir, out):
    """One whole `train.py` run; returns its figures."""
    folder = os.path.join(out, f"{recipe}-{seed}")
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--recipe", recipe,
               "--seed", str(seed), "--data-dir", data_dir, "--no-download",
               "-m", os.path.join(folder, "model.pth"), "-p", os.path.join(folder, "plot.png")]
    result = timed_run(command, os.path.join(folder, "log.txt"), cwd=ROOT)
    wall = result.wall
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    with open(os.path.join(folder, "metrics.json")) as f:
        metrics = json.load(f)
    return {"recipe": recipe, "seed": seed, "wall_s": round(wall, 1),
            "train_s": metrics["train_seconds"], "test_acc": metrics["test_accuracy"],
            "val_acc": metrics["history"]["val_acc"][-1], "epochs": metrics["options"]["epochs"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data", help="folder holding KMNIST/raw/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--recipes", nargs="+", choices=sorted(RECIPES),
                    default=["tutorial", "improved"], help="the first is the yardstick")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data_dir)
    out = tempfile.mkdtemp(prefix="recipes-")
    print(f"outputs and logs in {out}")

    runs = []
    for seed in args.seeds:
        for recipe in args.recipes:
            run = run_train(recipe, seed, data_dir, out)
            runs.append(run)
            print(f"seed {seed} {recipe:>9}: {run['wall_s']:6.1f} s wall, {run['train_s']:6.1f} s "
                  f"training, test accuracy {run['test_acc']:.4f}", flush=True)

    def column(recipe, key):
        """One figure of each of ``recipe``'s runs, in seed order."""
        return [x[key] for x in runs if x["recipe"] == recipe]

    base = args.recipes[0]
    for recipe in args.recipes:
        accuracies = column(recipe, "test_acc")
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        line = (f"{recipe:>9}: median {statistics.median(column(recipe, 'wall_s')):6.1f} s "
                f"wall, test accuracy mean {statistics.mean(accuracies):.4f} (sd {spread:.4f}, "
                f"min {min(accuracies):.4f})")
        for (time, what) in (("wall_s", "wall"), ("train_s", "training")) if recipe != base else ():
            (mine, theirs) = (column(recipe, time), column(base, time))
            ratio = statistics.median(mine) / statistics.median(theirs)
            line += (f"; {what} time {ratio:.2f}x the {base} recipe's (per seed: "
                     f"{', '.join(f'{m / t:.2f}x' for m, t in zip(mine, theirs))})")
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
