# USAGE
# python train.py --model output/model.pth --plot output/plot.png
"""Train LeNet on Kuzushiji-MNIST (KMNIST), following the tutorial's steps:
writes the model, the loss/accuracy plot and the reports beside them as one
set.  In Python or a notebook: ``import train; train.main(["--epochs", "1"])``.
"""

# import the necessary packages
import os
import sys
import time

import torch
from sklearn.metrics import classification_report
from torch import nn
from torch.nn import functional as F
from torch.optim import Adam, AdamW
from torch.utils.data import random_split

from modules.checkpoint import half_weights, save_checkpoint, save_epochs
from modules.console import (ArgumentParser, HelpFormatter, UserError, entry_point, fraction,
                             positive_float, positive_int, progress, run_main, seed_value,
                             show_inline)
from modules.data import CLASS_NAMES, KMNISTTensors, batches, load_kmnist
from modules.hardware import DEVICE_CHOICES, PRECISION_CHOICES, autocast, prepare
from modules.lenet import LeNet
from modules.outputs import OutputSet, check_writable
from modules.recipes import RECIPES
from modules.reports import report_paths, save_reports, save_training_plot

SPLIT_SEED = 42  # the split is always made with seed 42, as in the tutorial
EVAL_BATCH_SIZE = 1000  # (the tutorial: BATCH_SIZE) no gradients: larger batches, below


def parse_args(argv):
    ap = ArgumentParser(
        prog="train.py", description="Train LeNet on KMNIST (the tutorial's recipe by default).",
        formatter_class=HelpFormatter)
    ap.add_argument("-m", "--model", help="path to the output trained model (default: "
                    "output/model.pth; output/RECIPE/model.pth for another --recipe)")
    ap.add_argument("-p", "--plot", help="path to the output loss/accuracy plot (default: "
                    "plot.png beside the model)")
    ap.add_argument("--data-dir", default="data", help="folder that holds (or will hold) "
                    "KMNIST/raw/")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="tutorial",
                    help="how to train: " + "; ".join(f"{r.name} = {r.description}"
                                                      for r in RECIPES.values()))
    ap.add_argument("--epochs", type=positive_int, help="epochs to train (default: the "
                    "recipe's, 10 for tutorial)")
    ap.add_argument("--batch-size", type=positive_int, help="training batch size (default: "
                    "the recipe's, 64 for tutorial)")
    ap.add_argument("--lr", type=positive_float, help="learning rate (default: the recipe's, "
                    "1e-3 for tutorial)")
    ap.add_argument("--val-split", type=fraction, help="share of the 60,000 training images "
                    "held out for validation (default: the recipe's, 0.25 for tutorial)")
    ap.add_argument("--seed", type=seed_value, default=42, help="seed for weights, shuffling "
                    "and augmentation: the same seed gives the same numbers on the same CPU")
    ap.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                    help="where to train: auto = CUDA, then MPS, then CPU")
    ap.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help="auto = "
                    "bfloat16 mixed precision on CPUs that compute it natively, else float32")
    ap.add_argument("--no-download", action="store_true", help="never download")
    args = ap.parse_args(argv)
    # what an option does not say, the recipe does; a recipe but the tutorial's
    # writes to a folder of its own, so it never replaces another's
    for name in ("epochs", "batch_size", "lr", "val_split"):
        setattr(args, name, getattr(args, name) or getattr(RECIPES[args.recipe], name))
    folder = os.path.join("output", *([] if args.recipe == "tutorial" else [args.recipe]))
    args.model = args.model or os.path.join(folder, "model.pth")
    args.plot = args.plot or os.path.join(os.path.dirname(args.model), "plot.png")
    return args


@entry_point
def main(argv=()):
    runStartTime = time.time()
    args = parse_args(argv)
    for (option, path) in (("--model", args.model), ("--plot", args.plot),
                           *report_paths(args.model).items()):  # now, not after training
        check_writable(path, option)

    # define training hyperparameters: the tutorial's 1e-3, 64 and 10, unless
    # --recipe (modules/recipes.py) or an option says otherwise (--help)
    recipe = RECIPES[args.recipe]
    INIT_LR = args.lr
    BATCH_SIZE = args.batch_size
    EPOCHS = args.epochs

    # define the train and val splits: the tutorial's 0.75 and 0.25
    VAL_SPLIT = args.val_split
    TRAIN_SPLIT = 1 - VAL_SPLIT

    # set the device we will be using to train the model (CUDA, MPS or the
    # CPU); departures, in an epoch's time (benchmarks/bench_train.py): bfloat16
    # where the CPU computes it natively (-30% on a Zen 4), freed memory kept
    # for reuse on the CPU (-2% on a Zen 3, -24% on a Zen 4)
    (device, ampDtype) = prepare(args.device, args.precision)
    precision = "bf16 mixed precision" if ampDtype is not None else "fp32"
    torch.manual_seed(args.seed)
    print(f"[INFO] training on {device.type} ({precision}) with the {recipe.name} recipe "
          f"({EPOCHS} epoch{'s' * (EPOCHS != 1)}, batch {BATCH_SIZE}, lr {INIT_LR:g}, "
          f"{TRAIN_SPLIT:.0%}/{VAL_SPLIT:.0%} train/val split, seed {args.seed})")

    # load the KMNIST dataset
    print("[INFO] loading the KMNIST dataset...")
    trainData = load_kmnist(args.data_dir, train=True, download=not args.no_download)
    testData = load_kmnist(args.data_dir, train=False, download=False)

    # calculate the train/validation split
    print("[INFO] generating the train/validation split...")
    numValSamples = round(len(trainData) * VAL_SPLIT)
    numTrainSamples = len(trainData) - numValSamples
    if min(numTrainSamples, numValSamples) == 0:
        raise UserError(f"--val-split {VAL_SPLIT:g} of {len(trainData)} training images "
                        "leaves no image on one side; choose a split nearer 0.5")
    (trainData, valData) = random_split(
        KMNISTTensors(trainData, device), [numTrainSamples, numValSamples],
        generator=torch.Generator().manual_seed(SPLIT_SEED))

    # initialize the train, validation, and test data loaders (the tutorial:
    # DataLoader(trainData, shuffle=True, batch_size=BATCH_SIZE) of ToTensor()
    # images; here whole batches cut from one tensor on the device: -2%)
    trainDataLoader = batches(trainData, BATCH_SIZE, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    valDataLoader = batches(valData, EVAL_BATCH_SIZE)
    testDataLoader = batches(KMNISTTensors(testData, device), EVAL_BATCH_SIZE)

    # initialize the LeNet model (the tutorial: .to(device)); channels-last
    # weights, the faster layout for these convolutions: -41% on a Zen 3
    print("[INFO] initializing the LeNet model...")
    model = LeNet(numChannels=1, classes=len(CLASS_NAMES)).to(
        device, memory_format=torch.channels_last)

    # initialize our optimizer and loss function (fused: one kernel, where the device has it)
    fused = True if device.type in ("cpu", "cuda") else None
    opt = Adam(model.parameters(), lr=INIT_LR, fused=fused)
    lossFn = nn.NLLLoss()

    # the improved recipes decay the weights, smooth the labels (CrossEntropyLoss on
    # log-probabilities: NLLLoss plus smoothing), step a one-cycle schedule, distort images
    if recipe.weight_decay:
        opt = AdamW(model.parameters(), lr=INIT_LR, weight_decay=recipe.weight_decay,
                    fused=fused)
    if recipe.label_smoothing:
        lossFn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    scheduler = recipe.schedule(opt, INIT_LR, EPOCHS, len(trainDataLoader))
    augment = recipe.augmentation(torch.Generator(device=device).manual_seed(args.seed))

    # initialize a dictionary to store training history, and keep the weights
    # before training and after each epoch (for the drawing page's slider)
    H = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    epochWeights = [half_weights(model)]

    # measure how long training is going to take
    print("[INFO] training the network...")
    startTime = time.time()

    # loop over our epochs
    for e in range(0, EPOCHS):
        # set the model in training mode
        model.train()

        # initialize the total training and validation loss, and the number of
        # correct predictions (summed on the device, read once an epoch where the
        # tutorial's .item() waits every batch; evaluation in batches of 1,000 and
        # the fused Adam: -20% on a Zen 3)
        totalTrainLoss = totalValLoss = trainCorrect = valCorrect = 0

        # loop over the training set (a progress bar on a terminal or in a notebook)
        for (x, y) in progress(trainDataLoader, f"epoch {e + 1}/{EPOCHS}"):
            # the batch is on the device already; the improved recipes distort it
            if augment is not None:
                x = augment(x)

            # perform a forward pass and calculate the training loss (bfloat16: above)
            with autocast(device, ampDtype):
                pred = model(x)
                loss = lossFn(pred, y)

            # zero out the gradients, perform the backpropagation step,
            # and update the weights (and the improved recipes' learning rate)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()

            # add the loss to the total training loss so far and calculate the
            # number of correct predictions (the tutorial: totalTrainLoss +=
            # loss; here summed per image, and plain NLL where a recipe smooths
            # the labels, so the plot compares like with like)
            totalTrainLoss += F.nll_loss(pred.detach().float(), y) * y.size(0)
            trainCorrect += (pred.argmax(1) == y).sum()

        # switch off autograd for evaluation
        with torch.inference_mode():
            # set the model in evaluation mode
            model.eval()

            # loop over the validation set
            for (x, y) in valDataLoader:
                # make the predictions and calculate the validation loss
                with autocast(device, ampDtype):
                    pred = model(x).float()
                totalValLoss += F.nll_loss(pred, y, reduction="sum")

                # calculate the number of correct predictions
                valCorrect += (pred.argmax(1) == y).sum()

        # calculate the average training and validation loss per image
        avgTrainLoss = totalTrainLoss.item() / numTrainSamples
        avgValLoss = totalValLoss.item() / numValSamples

        # calculate the training and validation accuracy
        trainCorrect = trainCorrect.item() / numTrainSamples
        valCorrect = valCorrect.item() / numValSamples

        # update our training history
        H["train_loss"].append(avgTrainLoss)
        H["train_acc"].append(trainCorrect)
        H["val_loss"].append(avgValLoss)
        H["val_acc"].append(valCorrect)
        epochWeights.append(half_weights(model))

        # print the model training and validation information
        print(f"[INFO] EPOCH: {e + 1}/{EPOCHS}")
        print(f"Train loss: {avgTrainLoss:.6f}, Train accuracy: {trainCorrect:.4f}")
        print(f"Val loss: {avgValLoss:.6f}, Val accuracy: {valCorrect:.4f}\n")

    # finish measuring how long training took
    endTime = time.time()
    print(f"[INFO] total time taken to train the model: {endTime - startTime:.2f}s")

    # we can now evaluate the network on the test set (float32, as predict.py)
    print("[INFO] evaluating network...")

    # turn off autograd for testing evaluation
    with torch.inference_mode():
        # set the model in evaluation mode, and initialize a list to store
        # our predictions (log-probabilities)
        model.eval()
        preds = []

        # loop over the test set
        for (x, _) in testDataLoader:
            # make the predictions and add them to the list
            preds.append(model(x).float().cpu())

    # generate a classification report
    testLogProbs = torch.cat(preds)
    preds = testLogProbs.argmax(1)
    print(classification_report(testData.targets.numpy(), preds.numpy(),
                                labels=range(len(CLASS_NAMES)), target_names=CLASS_NAMES,
                                digits=4, zero_division=0))
    testAcc = (preds == testData.targets).float().mean().item()

    # plot the training loss and accuracy, and serialize the model to disk
    # (the tutorial: torch.save(model, ...), which a safe torch.load refuses;
    # here its weights and plain metadata) with the reports, as one set
    metrics = {"history": H, "options": vars(args), "test_accuracy": testAcc,
               "train_samples": numTrainSamples, "val_samples": numValSamples,
               "train_seconds": round(endTime - startTime, 3), "device": device.type,
               "precision": precision}
    with OutputSet() as outputs:
        save_training_plot(H, outputs.path(args.plot))
        save_checkpoint(outputs.path(args.model), model, options=vars(args), test_accuracy=testAcc)
        paths = save_reports(outputs, model, args.model, testData, testLogProbs,
                             {**metrics, "wall_seconds": round(time.time() - runStartTime, 3)})
        save_epochs(outputs.path(paths["epochs.pth"]), epochWeights)
        outputs.commit()
    print(f"[INFO] saved the model to {args.model}, the plot to {args.plot}, and beside them "
          f"the confusion matrix, the worst mistakes, the filters and feature maps, metrics "
          f"and each epoch's weights ({', '.join(map(os.path.basename, paths.values()))})")
    print(f"[INFO] test accuracy: {testAcc:.4f}", flush=True)
    show_inline(args.plot)  # (in a notebook)
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
