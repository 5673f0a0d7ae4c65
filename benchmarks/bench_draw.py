"""How long `predict.py --draw` takes to answer a finished stroke.

By default, the server's part, in this process: the request's JSON parsed,
the canvas rendered from its strokes, the --image preprocessing
(modules/images.py), the forward pass, conv1's feature maps, and the
answer's pictures and JSON encoded.  It must stay well under 30 ms for the
page to feel live.

    python benchmarks/bench_draw.py [-m output/model.pth] [--repeats 200]

With --browser, the whole page in headless Chromium (Debian's chromium and
chromium-driver, and Selenium): strokes drawn with pointer events, and for
each the time from the end of the stroke to the answer shown on the page,
and the server's part of it (its Server-Timing header).  --screenshot PATH
saves the page after a drawn character (and, where the model has its
epochs, PATH-epoch1.png: the slider at epoch 1).  --traced N draws N test
characters on the page instead, each traced along its skeleton, and counts
how many the page reads right (beside the model's reading of the images).

Without a model file it uses an untrained LeNet (the time does not depend on
the weights).  Needs no display.
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(ROOT, "tests"))  # browser.py: the tests' Selenium helpers

import contextlib  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from modules.canvas import CANVAS_SIZE, DrawingFolder, reference_images  # noqa: E402
from modules.checkpoint import build_model, load_checkpoint, load_epochs  # noqa: E402
from modules.classify import class_probabilities  # noqa: E402
from modules.console import UserError  # noqa: E402
from modules.data import CLASS_NAMES, load_kmnist  # noqa: E402
from modules.draw_server import Console, DrawingApp, parse_request, start_server  # noqa: E402
from modules.lenet import LeNet  # noqa: E402
from modules.lookalikes import Lookalikes  # noqa: E402
from modules.reports import report_paths  # noqa: E402


def sample_drawing():
    """Three strokes, about 150 pointer positions in all, like a quick
    character, as the page sends them (whole pixels)."""
    t = np.linspace(0, 1, 50)
    return [[[round(x), round(y)] for (x, y) in zip(x0 + (x1 - x0) * t + bend * np.sin(np.pi * t),
                                                    y0 + (y1 - y0) * t)]
            for (x0, y0, x1, y1, bend) in ((60, 90, 280, 80, 30), (170, 40, 140, 300, -40),
                                           (90, 200, 270, 260, 60))]


def tsu_drawing():
    """One stroke shaped like つ (tsu), for the screenshot."""
    t = np.linspace(0, 1, 40)
    xs = 60 + 190 * np.sin(np.pi * 0.55 * t) + 20 * t
    ys = 150 - 50 * np.sin(np.pi * t) + 110 * t ** 3
    return [[[round(x), round(y)] for (x, y) in zip(xs, ys)]]


def traced_drawing(image):
    """Strokes a hand could have drawn a 28x28 character with: along the
    skeleton of its ink at canvas size, each from a loose end (or any pixel
    left) through untraced neighbours, every fourth point."""
    big = cv2.resize(image, (CANVAS_SIZE, CANVAS_SIZE), interpolation=cv2.INTER_LINEAR)
    skeleton = cv2.ximgproc.thinning((big > 100).astype(np.uint8) * 255)
    left = {(int(y), int(x)) for (y, x) in zip(*np.nonzero(skeleton))}
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]

    def around(p):
        return [(p[0] + dy, p[1] + dx) for (dy, dx) in steps if (p[0] + dy, p[1] + dx) in left]
    strokes = []
    while left:
        point = min([p for p in left if len(around(p)) <= 1] or left)
        path = [point]
        left.discard(point)
        while next_points := around(point):
            point = next_points[0]
            path.append(point)
            left.discard(point)
        if len(path) >= 6:  # not the specks thinning leaves
            strokes.append([[x, y] for (y, x) in path[::4] + path[-1:]])
    return strokes


@contextlib.contextmanager
def page(app):
    """The page of a server in this process, in headless Chromium, ready."""
    from browser import chromium, wait_for

    server = start_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        with chromium(940, 780) as driver:
            driver.get(f"http://127.0.0.1:{server.effective_port}/")
            wait_for(driver, "return document.body.dataset.ready === 'yes'")
            yield driver
    finally:
        server.close()


def bench_traced(app, test_data, count):
    """``count`` random test characters (seed 0), traced and drawn on the page
    stroke by stroke: how many it reads right, and how many the model reads
    right from the images themselves."""
    from browser import draw_strokes, wait_for

    (on_page, on_image, done) = (0, 0, 0)
    with page(app) as driver:
        for i in np.random.default_rng(0).choice(len(test_data), count, replace=False):
            (image, label) = (test_data.data[i].numpy(), int(test_data.targets[i]))
            for stroke in traced_drawing(image):
                draw_strokes(driver, [stroke])
                done += 1
                wait_for(driver, f"return document.body.dataset.readings === '{done}'")
            read = driver.execute_script("return document.body.dataset.top")
            direct = class_probabilities(app.model, image / 255, app.device).argmax()
            (on_page, on_image) = (on_page + (read == CLASS_NAMES[label]),
                                   on_image + (direct == label))
            if read != CLASS_NAMES[label]:
                print(f"test image {i}: {CLASS_NAMES[label]}, the page reads {read}")
            driver.find_element("tag name", "body").send_keys("c")
    print(f"traced and drawn: {on_page} of {count} read right; "
          f"the same {count} images classified by the model: {on_image} right")


def bench_browser(app, runs, screenshot):
    """The page in headless Chromium against a server in this process."""
    from browser import draw_strokes, wait_for

    with page(app) as driver:
        done = 0
        for _ in range(runs):
            for stroke in sample_drawing():  # one at a time, each answer awaited
                draw_strokes(driver, [stroke])
                done += 1
                wait_for(driver, f"return document.body.dataset.readings === '{done}'")
            driver.find_element("tag name", "body").send_keys("c")
        timings = driver.execute_script("return window.timings")
        if screenshot:
            draw_strokes(driver, tsu_drawing())
            wait_for(driver, f"return document.body.dataset.readings === '{done + 1}'")
            driver.save_screenshot(screenshot)
            print(f"saved {screenshot}: the page reads "
                  f"{driver.execute_script('return document.body.dataset.top')}")
            if app.last_epoch:  # and the same drawing read as after the first epoch
                driver.execute_script("const s = document.getElementById('epoch'); "
                                      "s.value = 1; s.dispatchEvent(new Event('change'));")
                wait_for(driver, "return document.body.dataset.epoch === '1'")
                then = screenshot.replace(".png", "-epoch1.png")
                driver.save_screenshot(then)
                print(f"saved {then}: after epoch 1 the page reads "
                      f"{driver.execute_script('return document.body.dataset.top')}")
    timings = timings[2:]  # the first strokes warm up the browser, PyTorch and the caches
    for name in ("total", "server"):
        times = [t[name] for t in timings]
        label = {"total": "end of stroke -> answer on the page",
                 "server": "of which the server (Server-Timing)"}[name]
        print(f"{label:>38}: median {statistics.median(times):6.2f} ms, "
              f"worst {max(times):6.2f} ms ({len(times)} strokes)")


def bench_server(app, repeats):
    """The server's answer to the whole sample drawing, finished, in this
    process; and where the model has its epochs, read by epoch 1's weights
    (the slider moved: those weights loaded, the trained model's look-alikes)."""
    cases = [("a finished stroke answered (server)", {"final": True})]
    if app.last_epoch:
        cases.append(("the slider moved to epoch 1 (server)", {"epoch": 1}))
    for (label, fields) in cases:
        body = json.dumps({"strokes": sample_drawing(), **fields}).encode()
        times = []
        for i in range(repeats + 10):
            started = time.perf_counter()
            with app.one_at_a_time:
                app.draw("/read", *parse_request(body, app.last_epoch))
            if i >= 10:  # the first few warm up PyTorch and the caches
                times.append((time.perf_counter() - started) * 1000)
        print(f"{label:>38}: median {statistics.median(times):6.2f} ms, 95th percentile "
              f"{np.percentile(times, 95):6.2f} ms ({repeats} answers)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "output", "model.pth"))
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--browser", action="store_true",
                    help="time the page of --draw --browser in headless Chromium")
    ap.add_argument("--runs", type=int, default=20,
                    help="with --browser: how many times the sample drawing is drawn")
    ap.add_argument("--screenshot", help="with --browser: save the page here")
    ap.add_argument("--traced", type=int, metavar="N",
                    help="how many traced test characters the page reads right (of N)")
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data"),
                    help="the strip of the ten classes' test images, if present")
    args = ap.parse_args()
    epochs = []
    if os.path.exists(args.model):
        model = build_model(load_checkpoint(args.model), args.model)
        epochs_path = report_paths(args.model)["epochs.pth"]
        epochs = load_epochs(epochs_path, model) if os.path.exists(epochs_path) else []
        print(f"model: {args.model}, {len(epochs)} sets of weights for the slider")
    else:
        model = LeNet(1, len(CLASS_NAMES)).eval()
        print("model: an untrained LeNet (no model file found)")
    try:  # as predict.py --draw does
        (test_data, train_data) = (load_kmnist(args.data_dir, train=t, download=False)
                                   for t in (False, True))
        lookalikes = Lookalikes(model, train_data.data, train_data.targets, torch.device("cpu"))
    except UserError:
        (test_data, lookalikes) = (None, None)
    torch.set_num_threads(1)  # as predict.py --draw does
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    with tempfile.TemporaryDirectory() as drawings:
        console = Console(lambda line: None)
        app = DrawingApp(model, torch.device("cpu"), reference_images(test_data),
                         DrawingFolder(drawings, console), "127.0.0.1", console, lookalikes,
                         epochs)
        if args.traced and test_data is None:
            sys.exit(f"--traced needs the KMNIST test set in {args.data_dir}")
        if args.traced:
            bench_traced(app, test_data, args.traced)
        elif args.browser:
            bench_browser(app, args.runs, args.screenshot)
        else:
            bench_server(app, args.repeats)


if __name__ == "__main__":
    main()
