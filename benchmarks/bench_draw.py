"""How long `predict.py --draw` takes to read a drawing and redraw its window.

One "prediction" is what happens while you draw: the canvas rendered from
its strokes, the --image preprocessing (modules/images.py), the forward
pass, conv1's feature maps, and the window's whole picture composed.  It
must stay well under 30 ms for the canvas to feel live.

    python benchmarks/bench_draw.py [-m output/model.pth] [--repeats 200]

With --browser, the page of `predict.py --draw --browser` instead, in
headless Chromium (Debian's chromium and chromium-driver, and Selenium):
strokes drawn with pointer events, and for each the time from the end of
the stroke to the answer shown on the page, and the server's part of it (its
Server-Timing header: reading the JSON, rendering, preprocessing, the
model, encoding the pictures).  --screenshot PATH saves the page after a
drawn character.

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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from modules.canvas import (Canvas, background, compose, read_drawing,  # noqa: E402
                            reference_images)
from modules.checkpoint import build_model, load_checkpoint  # noqa: E402
from modules.data import CLASS_NAMES  # noqa: E402
from modules.glyphs import glyph_images  # noqa: E402
from modules.lenet import LeNet  # noqa: E402


def sample_drawing():
    """Three strokes, about 150 mouse positions in all, like a quick character."""
    t = np.linspace(0, 1, 50)
    return Canvas([list(zip(x0 + (x1 - x0) * t + bend * np.sin(np.pi * t), y0 + (y1 - y0) * t))
                   for (x0, y0, x1, y1, bend) in ((60, 90, 280, 80, 30), (170, 40, 140, 300, -40),
                                                  (90, 200, 270, 260, 60))])


def tsu_drawing():
    """One stroke shaped like つ (tsu), for the screenshot."""
    t = np.linspace(0, 1, 40)
    xs = 60 + 190 * np.sin(np.pi * 0.55 * t) + 20 * t
    ys = 150 - 50 * np.sin(np.pi * t) + 110 * t ** 3
    return [[[round(x), round(y)] for (x, y) in zip(xs, ys)]]


def bench_browser(model, runs, screenshot, data_dir):
    """The page in headless Chromium against a server in this process."""
    import tempfile
    import threading

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from browser import chromium, draw_strokes, wait_for  # the tests' Selenium helpers

    from modules.data import load_kmnist
    from modules.canvas import DrawingFolder
    from modules.draw_server import Console, DrawingApp, start_server
    from modules.console import UserError

    try:
        test_data = load_kmnist(data_dir, train=False, download=False)
    except UserError:
        test_data = None
    with tempfile.TemporaryDirectory() as drawings:
        console = Console(lambda line: None)
        app = DrawingApp(model, torch.device("cpu"), reference_images(test_data),
                         DrawingFolder(drawings, console), "127.0.0.1", console)
        server = start_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.run, daemon=True).start()
        strokes = [[[round(x), round(y)] for (x, y) in stroke]
                   for stroke in sample_drawing().strokes]
        try:
            with chromium(940, 780) as driver:
                driver.get(f"http://127.0.0.1:{server.effective_port}/")
                wait_for(driver, "return document.body.dataset.ready === 'yes'")
                done = 0
                for _ in range(runs):
                    for stroke in strokes:  # one at a time, each answer awaited
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
        finally:
            server.close()
    timings = timings[2:]  # the first strokes warm up the browser, PyTorch and the caches
    for name in ("total", "server"):
        times = [t[name] for t in timings]
        label = {"total": "end of stroke -> answer on the page",
                 "server": "of which the server (Server-Timing)"}[name]
        print(f"{label:>38}: median {statistics.median(times):6.2f} ms, "
              f"worst {max(times):6.2f} ms ({len(times)} strokes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "output", "model.pth"))
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--browser", action="store_true",
                    help="time the page of --draw --browser in headless Chromium")
    ap.add_argument("--runs", type=int, default=20,
                    help="with --browser: how many times the sample drawing is drawn")
    ap.add_argument("--screenshot", help="with --browser: save the page here")
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "data"),
                    help="with --browser: the reference strip's test images, if present")
    args = ap.parse_args()
    if os.path.exists(args.model):
        model = build_model(load_checkpoint(args.model), args.model)
        print(f"model: {args.model}")
    else:
        model = LeNet(1, len(CLASS_NAMES)).eval()
        print("model: an untrained LeNet (no model file found)")
    device = torch.device("cpu")
    torch.set_num_threads(1)  # as predict.py --draw does
    if args.browser:
        bench_browser(model, args.runs, args.screenshot, args.data_dir)
        return
    canvas = sample_drawing()
    glyphs = glyph_images(48)
    references = reference_images(None, glyphs)
    base = background(references, glyphs)  # drawn once per window, as the session does
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"glyphs: {'yes' if glyphs else 'no font'}")

    parts = {"render canvas": [], "preprocess + forward + feature maps": [],
             "compose picture": [], "total": []}
    for i in range(args.repeats + 10):
        t0 = time.perf_counter()
        image = canvas.image()
        t1 = time.perf_counter()
        reading = read_drawing(model, image, device)
        t2 = time.perf_counter()
        compose(image, reading, references, glyphs, base=base)
        t3 = time.perf_counter()
        if i >= 10:  # the first few warm up PyTorch and the caches
            for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                parts[name].append(seconds * 1000)
    for name, times in parts.items():
        print(f"{name:>36}: median {statistics.median(times):6.2f} ms, "
              f"95th percentile {np.percentile(times, 95):6.2f} ms")


if __name__ == "__main__":
    main()
