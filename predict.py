# USAGE
# python predict.py --model output/model.pth
# python predict.py --image my_drawing.png [more.jpg folder/ ...]
# python predict.py --draw
"""Classify random KMNIST test images (or your own pictures) with a trained LeNet.

Prints the tutorial's lines, saves the annotated images as one grid picture
and, where a display exists, shows each image in an OpenCV window.  With
--draw, a page to draw a character on, served to your web browser and read
by the model as you draw.
From Python or a notebook: ``import predict; predict.main(["--no-display"])``.
"""

# import the necessary packages
import argparse
import os
import sys
import webbrowser

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from modules.canvas import DrawingFolder, reference_images
from modules.checkpoint import build_model, describe_model, load_checkpoint, load_epochs
from modules.classify import class_probabilities, describe_top, top_classes
from modules.console import (ArgumentParser, HelpFormatter, UserError, entry_point, in_notebook,
                             port_number, positive_int, run_main, seed_value, show_inline)
from modules.data import CLASS_NAMES, KMNISTTensors, load_kmnist
from modules.display import annotate, display_problem, show_one_by_one
from modules.draw_server import (Console, DrawingApp, is_loopback, page_address,
                                 serve_until_stopped, start_server)
from modules.glyphs import GLYPH_HINT, class_labels, hiragana_font
from modules.hardware import DEVICE_CHOICES, choose_device
from modules.images import IMAGE_EXTENSIONS, ImageProblem, expand_image_paths, load_character
from modules.lookalikes import Lookalikes
from modules.outputs import OutputSet, check_writable
from modules.reports import COLOURS, report_paths, save_prediction_grid

# the saved grid and the window show at most this many images (drawing costs
# far more than classifying, and a larger grid is unreadable); every image is
# still classified and printed
MAX_SHOWN = 50


def parse_args(argv):
    ap = ArgumentParser(
        prog="predict.py", formatter_class=HelpFormatter,
        description="Classify random KMNIST test images, or your own image files, with a "
                    "model trained by train.py.")
    ap.add_argument("-m", "--model", default=os.path.join("output", "model.pth"),
                    help="path to the trained model")
    ap.add_argument("--data-dir", default="data",
                    help="folder that holds (or will hold) KMNIST/raw/")
    ap.add_argument("--num", type=positive_int, default=None,
                    help="how many random test images to classify, drawn with replacement "
                         "as the tutorial draws them (default: 10)")
    ap.add_argument("--seed", type=seed_value, default=42,
                    help="NumPy seed that picks the test images")
    ap.add_argument("--image", nargs="+", metavar="PATH",
                    help="classify these image files (or every image in these folders) "
                         "instead of test images: any size, dark ink on light paper or "
                         "light on dark; needs only the model file")
    ap.add_argument("--draw", action="store_true",
                    help="draw a character yourself on a page in your web browser (opened "
                         "for you where one can open); the model reads it as you draw")
    # the drawing was once a window, and --draw --browser the page: both are the page now
    ap.add_argument("--browser", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--host", default="127.0.0.1",
                    help="with --draw: the address to listen on; another than 127.0.0.1 "
                         "lets other machines reach the page")
    ap.add_argument("--port", type=port_number, default=8000,
                    help="with --draw: the port to listen on (0: any free one)")
    ap.add_argument("-o", "--output", default=os.path.join("output", "predictions.png"),
                    help="where to save the annotated images as one picture")
    ap.add_argument("--no-display", action="store_true",
                    help="open no window (with --draw: no web browser); only print and save")
    ap.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                    help="where to run the model: auto = CUDA, then MPS, then CPU")
    ap.add_argument("--no-download", action="store_true",
                    help="never download; use only files already in --data-dir")
    args = ap.parse_args(argv)
    served = [option for option, given in (("--host", args.host != "127.0.0.1"),
                                           ("--port", args.port != 8000)) if given]
    if served and not args.draw:
        ap.error(f"{' and '.join(served)} only work{'s' * (len(served) == 1)} with --draw")
    if args.browser and not args.draw:
        ap.error("--browser goes with --draw: python predict.py --draw")
    if args.draw:
        clashes = [option for option, given in (("--image", args.image),
                                                ("--num", args.num is not None)) if given]
        if clashes:
            ap.error(f"--draw cannot be combined with {' or '.join(clashes)}: it classifies "
                     "what you draw on its page")
    args.num = 10 if args.num is None else args.num
    return args


def classify_test_images(args, model, device, captions):
    """The tutorial's predict step; returns (grid panels, window pictures, number right)."""
    # load the KMNIST test dataset and randomly grab args.num images from it
    print("[INFO] loading the KMNIST test dataset...")
    testData = load_kmnist(args.data_dir, train=False, download=not args.no_download)
    if args.num > len(testData):
        raise UserError(f"--num {args.num:,} is more than the {len(testData):,} images of the "
                        f"KMNIST test set; ask for at most {len(testData):,}")
    np.random.seed(args.seed)
    idxs = np.random.choice(range(len(testData)), size=(args.num,))
    testDataLoader = DataLoader(Subset(KMNISTTensors(testData, device), idxs), batch_size=1)

    panels, pictures, rightCount = [], [], 0
    # switch off autograd and loop over the test set
    with torch.inference_mode():
        for (image, label) in testDataLoader:
            # make the predictions and grab the ground truth label
            pred = model(image.to(device))
            (predIdx, gtIdx) = (pred.argmax(axis=1).item(), label.item())
            (gtLabel, predLabel) = (CLASS_NAMES[gtIdx], CLASS_NAMES[predIdx])
            print(f"[INFO] ground truth label: {gtLabel}, predicted label: {predLabel}")
            right = gtIdx == predIdx
            rightCount += right
            if len(panels) == MAX_SHOWN:
                continue

            # green text when right, red when wrong, as the tutorial draws it
            origImage = image[0, 0].cpu().numpy()
            colour = COLOURS["right" if right else "wrong"]
            pictures.append(annotate(origImage, gtLabel, colour))
            panels.append((origImage, f"true {captions[gtIdx]}\npred {captions[predIdx]}", colour))
    return panels, pictures, rightCount


def classify_own_images(args, model, device, captions):
    """Classify image files: top 3 classes each; a bad file is reported, not fatal.

    Returns (grid panels, window pictures, files classified, exit status).
    """
    (paths, emptyFolders) = expand_image_paths(args.image)
    for folder in emptyFolders:
        print(f"[ERROR] {folder}: the folder holds no image files "
              f"({', '.join(IMAGE_EXTENSIONS)})", file=sys.stderr)
    panels, pictures, classified = [], [], 0
    for path in paths:
        try:
            character = load_character(path)
        except ImageProblem as problem:
            print(f"[ERROR] {path}: {problem}", file=sys.stderr)
            continue
        probabilities = class_probabilities(model, character, device)
        print(f"{path}: {describe_top(probabilities)}")
        classified += 1
        if len(panels) == MAX_SHOWN:
            continue
        best = top_classes(probabilities)[0]
        pictures.append(annotate(character, CLASS_NAMES[best], COLOURS["own"]))
        panels.append((character, f"{os.path.basename(path)[:18]}\n{captions[best]} "
                                  f"{probabilities[best]:.0%}", "black"))
    failed = len(paths) - classified
    if failed:
        print(f"[ERROR] {failed:,} of {len(paths):,} files could not be classified",
              file=sys.stderr)
    return panels, pictures, classified, 1 if failed or emptyFolders else 0


def draw_and_classify(args, model, device):
    """--draw: serve the drawing page until Ctrl-C; the model reads the drawing as it grows."""
    try:  # the ten classes and what a drawing resembles: real images, where the data is here
        (testData, trainData) = (load_kmnist(args.data_dir, train=t, download=False)
                                 for t in (False, True))
        lookalikes = Lookalikes(model, trainData.data, trainData.targets, device)
        print(f"[INFO] indexed {lookalikes.count:,} training images for \"it looks like\" in "
              f"{lookalikes.seconds:.1f} s ({lookalikes.megabytes:.0f} MB)")
    except UserError:
        (testData, lookalikes) = (None, None)
    # how it learned: the weights of each epoch, where train.py left them beside the model
    (epochs, epochsPath) = ([], report_paths(args.model)["epochs.pth"])
    if not os.path.exists(epochsPath):
        print(f"[INFO] no {epochsPath} beside the model (train.py writes it): the page has "
              "no epoch slider")
    else:
        try:
            epochs = load_epochs(epochsPath, model)
        except UserError as problem:
            print(f"[WARNING] {problem}: the page has no epoch slider", file=sys.stderr)
    # one 28x28 image at a time: more threads only add waiting
    torch.set_num_threads(1)
    saveFolder = os.path.join(os.path.dirname(args.output) or ".", "drawings")
    console = Console()
    app = DrawingApp(model, device, reference_images(testData),
                     DrawingFolder(saveFolder, console), args.host, console, lookalikes, epochs)
    server = start_server(app, args.host, args.port)
    if not is_loopback(args.host):
        print(f"[WARNING] listening on {args.host}: other machines that can reach this one can "
              "open the page and have drawings read; use it only on a network you trust",
              file=sys.stderr)
    address = page_address(server)
    print(f"[INFO] drawing page at {address} : open it in a web browser; Ctrl-C stops the "
          "server")
    if not args.no_display and open_in_browser(address):
        print("[INFO] opened the page in your web browser", flush=True)
    else:
        port = server.effective_port
        print(f"[INFO] from another machine over SSH: ssh -L {port}:127.0.0.1:{port} "
              f"USER@THIS-MACHINE, then open http://127.0.0.1:{port}/ there", flush=True)
    return serve_until_stopped(server, console)


def open_in_browser(address):
    """Open ``address`` in the user's graphical web browser, or the one
    $BROWSER names; True if one was started."""
    chosen = os.environ.get("BROWSER")
    if not chosen and sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and \
            not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False  # no display: SSH, a container
    try:
        browser = webbrowser.get()
    except webbrowser.Error:  # none installed
        return False
    if type(browser) is webbrowser.GenericBrowser and not chosen:
        return False  # a text browser (lynx, w3m) would take over this terminal
    return browser.open(address)


@entry_point
def main(argv=()):
    args = parse_args(argv)
    check_writable(args.output, "--output")
    device = choose_device(args.device)

    # load the model from disk: weights and plain metadata only, never code
    print("[INFO] loading the model...")
    checkpoint = load_checkpoint(args.model)
    model = build_model(checkpoint, args.model).to(device)
    print(f"[INFO] {args.model}: {describe_model(checkpoint)}")

    if args.draw:
        return draw_and_classify(args, model, device)

    # class names for the saved picture: with the hiragana where a font has them
    glyphs = hiragana_font() is not None
    captions = class_labels(with_glyphs=glyphs)
    if args.image:
        (panels, pictures, total, status) = classify_own_images(args, model, device, captions)
        (title, score) = ("LeNet on your images (top class, probability)", None)
    else:
        (panels, pictures, right) = classify_test_images(args, model, device, captions)
        (total, status) = (args.num, 0)
        title = f"LeNet on {total:,} random KMNIST test images: {right:,} right"
        score = f"[INFO] {right:,} of {total:,} test images classified right ({right / total:.1%})"
    if not panels:
        return status
    # past MAX_SHOWN images, the pictures show the first ones and say so
    shown = "the" if len(panels) == total else f"the first {len(panels)} of {total:,}"
    if len(panels) < total:
        title += f" (the first {len(panels)} shown)"

    # always keep the annotated images as one picture
    with OutputSet() as outputs:
        save_prediction_grid(panels, outputs.path(args.output), title)
        outputs.commit()
    print(f"[INFO] saved {shown} annotated images to {args.output}")
    if not glyphs:
        print(GLYPH_HINT)

    # and show them one by one where a window can open (in a notebook, below the cell)
    show_inline(args.output)
    problem = None if args.no_display or in_notebook() else display_problem()
    if problem:
        print(f"[INFO] no display to show the images on ({problem}); "
              f"see {args.output} instead")
    elif not (args.no_display or in_notebook()):
        print(f"[INFO] showing {shown} images: press any key for the next, q or Esc to quit")
        show_one_by_one(pictures)
    if score:  # last, after however many lines
        print(score)
    return status


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
