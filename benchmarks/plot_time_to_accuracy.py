"""Test accuracy against training time, one point per run, one colour per recipe.

Reads the JSON written by benchmarks/compare_recipes.py (a list of runs
with recipe, seed, train_s and test_acc; more files may add runs of other
recipes, such as an earlier version of one, under a name of their own) and
draws docs/time_to_accuracy.png.
Times are shown as multiples of the tutorial recipe's median training time
in the same file (one file per side-by-side session: the machine's speed
drifts from one day to the next), so runs from different sessions compare
fairly.

    python benchmarks/plot_time_to_accuracy.py results.json [more.json] -o docs/time_to_accuracy.png
"""

import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from matplotlib.figure import Figure  # noqa: E402  (drawn to a file, no window)

from modules.recipes import RECIPES  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="JSON files of runs")
    ap.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "time_to_accuracy.png"))
    args = ap.parse_args()
    runs = []
    for path in args.results:
        with open(path) as f:
            session = json.load(f)
        base = statistics.median(r["train_s"] for r in session if r["recipe"] == "tutorial")
        runs += [dict(r, times_tutorial=r["train_s"] / base) for r in session]

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    recipes = list(dict.fromkeys(r["recipe"] for r in runs))
    for recipe in recipes:
        mine = [r for r in runs if r["recipe"] == recipe]
        xs = [r["times_tutorial"] for r in mine]
        ys = [100 * r["test_acc"] for r in mine]
        known = RECIPES.get(recipe)
        what = (f"{recipe}: {known.epochs} epochs, batch {known.batch_size}"
                if known and all(r["epochs"] == known.epochs for r in mine) else recipe)
        label = f"{what} ({len(mine)} run{'s' if len(mine) > 1 else ''})"
        ax.scatter(xs, ys, s=40, label=label)
        ax.plot([statistics.mean(xs)], [statistics.mean(ys)], marker="_", markersize=30,
                color=ax.collections[-1].get_facecolor()[0])
    ax.set_xlabel("training time, in multiples of the tutorial recipe's in the same session "
                  "(log scale)")
    ax.set_ylabel("test accuracy (%)")
    # a log scale, so that 0.15x and 12x both have room
    ax.set_xscale("log")
    ticks = [0.1, 0.25, 0.5, 1, 2, 4, 8, 16]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.set_xlim(0.08, 20)
    ax.grid(alpha=0.3)
    ax.set_title("LeNet on KMNIST: test accuracy against training time (2-core CPU)")
    ax.legend(loc="center", fontsize=9)  # the band between the short and long runs
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
