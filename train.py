# USAGE
# python train.py --model output/model.pth --plot output/plot.png
"""Train LeNet on Kuzushiji-MNIST (KMNIST), following the tutorial's steps.

Writes the model and the loss/accuracy plot, and beside the model the
reports (modules/reports.py), all as one set; prints the tutorial's lines.
From Python or a notebook: ``import train; train.main(["--epochs", "1"])``.
"""

# import the necessary packages
import argparse
import os
import sys
import time

import torch
from sklearn.metrics import classification_report
from torch import nn
from torch.nn import functional as F
from torch.optim import Adam, AdamW
from torch.utils.data import random_split

from modules.checkpoint import model_metadata, save_checkpoint, versions
from modules.console import (HelpFormatter, UserError, fraction, positive_float, positive_int,
                             progress, run_main, seed_value)
from modules.data import CLASS_NAMES, KMNISTTensors, batches, load_kmnist
from modules.hardware import DEVICE_CHOICES, PRECISION_CHOICES, autocast, prepare
from modules.lenet import LeNet
from modules.outputs import OutputSet, check_writable
from modules.recipes import RECIPES
from modules.reports import report_paths, save_reports, save_training_plot

SPLIT_SEED = 42  # the split is always made with seed 42, as in the tutorial
EVAL_BATCH_SIZE = 1000  # evaluation needs no gradients, so it can take much larger batches


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Train LeNet on KMNIST (the tutorial's recipe by default).",
        formatter_class=HelpFormatter)
    ap.add_argument("-m", "--model", default=os.path.join("output", "model.pth"),
                    help="path to the output trained model")
    ap.add_argument("-p", "--plot", default=os.path.join("output", "plot.png"),
                    help="path to the output loss/accuracy plot")
    ap.add_argument("--data-dir", default="data",
                    help="folder that holds (or will hold) KMNIST/raw/")
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
    ap.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                    help="arithmetic of the forward pass: auto = bfloat16 mixed precision on "
                         "CPUs that compute it natively (faster), float32 elsewhere")
    ap.add_argument("--no-download", action="store_true", help="never download; use only "
                    "files already in --data-dir")
    return ap.parse_args(argv)


def main(argv=()):
    runStartTime = time.time()
    args = parse_args(argv)
    # fail now, not after training, if an output file cannot be written
    for (option, path) in (("--model", args.model), ("--plot", args.plot),
                           *report_paths(args.model).items()):
        check_writable(path, option)

    # define training hyperparameters
    INIT_LR = 1e-3
    BATCH_SIZE = 64
    EPOCHS = 10

    # define the train and val splits
    TRAIN_SPLIT = 0.75
    VAL_SPLIT = 1 - TRAIN_SPLIT

    # the one place where --recipe (modules/recipes.py) and the options
    # change the tutorial's values
    recipe = RECIPES[args.recipe]
    INIT_LR = args.lr or recipe.lr or INIT_LR
    BATCH_SIZE = args.batch_size or recipe.batch_size or BATCH_SIZE
    EPOCHS = args.epochs or recipe.epochs or EPOCHS
    VAL_SPLIT = args.val_split or recipe.val_split or VAL_SPLIT
    TRAIN_SPLIT = 1 - VAL_SPLIT

    # set the device we will be using to train the model, and its precision:
    # bfloat16 mixed precision on a CPU that computes it natively (the weights
    # stay float32; what each speed-up buys: docs/performance.md)
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
    # (the images are held as one tensor on the device, modules/data.py)
    (trainData, valData) = random_split(
        KMNISTTensors(trainData, device), [numTrainSamples, numValSamples],
        generator=torch.Generator().manual_seed(SPLIT_SEED))

    # initialize the train, validation, and test data loaders
    trainDataLoader = batches(trainData, BATCH_SIZE, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    valDataLoader = batches(valData, EVAL_BATCH_SIZE)
    testDataLoader = batches(KMNISTTensors(testData, device), EVAL_BATCH_SIZE)

    # initialize the LeNet model; channels-last weights are the faster layout
    # for these convolutions on the CPU (a one-channel input is laid out that
    # way already)
    print("[INFO] initializing the LeNet model...")
    model = LeNet(numChannels=1, classes=len(CLASS_NAMES)).to(
        device, memory_format=torch.channels_last)

    # initialize our optimizer and loss function: the tutorial's Adam and
    # NLLLoss, with the whole update in one fused kernel. The improved
    # recipes decay the weights (AdamW) and smooth the labels (LeNet outputs
    # log-probabilities, so CrossEntropyLoss on them is NLLLoss plus smoothing)
    fused = True if device.type in ("cpu", "cuda") else None
    opt = (AdamW(model.parameters(), lr=INIT_LR, weight_decay=recipe.weight_decay, fused=fused)
           if recipe.weight_decay else Adam(model.parameters(), lr=INIT_LR, fused=fused))
    lossFn = (nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
              if recipe.label_smoothing else nn.NLLLoss())
    # the improved recipes also step a one-cycle schedule and distort every image
    scheduler = recipe.schedule(opt, INIT_LR, EPOCHS, len(trainDataLoader))
    augment = recipe.augmentation(torch.Generator(device=device).manual_seed(args.seed))

    # initialize a dictionary to store training history
    H = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}

    # measure how long training is going to take
    print("[INFO] training the network...")
    startTime = time.time()

    # loop over our epochs
    for e in range(0, EPOCHS):
        # set the model in training mode
        model.train()

        # initialize the total training and validation loss, and the number
        # of correct predictions (tensors on the device, read once an epoch)
        totalTrainLoss = totalValLoss = trainCorrect = valCorrect = 0

        # loop over the training set (with a progress bar on a terminal)
        for (x, y) in progress(trainDataLoader, f"epoch {e + 1}/{EPOCHS}"):
            # the batch is on the device already; the improved recipes distort it
            if augment is not None:
                x = augment(x)

            # perform a forward pass and calculate the training loss
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

            # add the loss to the total training loss so far (as plain NLL,
            # also where the recipe smooths the labels, weighted by the batch's
            # size) and calculate the number of correct predictions
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
        # (.item() waits for the device: once per epoch)
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

        # print the model training and validation information
        print(f"[INFO] EPOCH: {e + 1}/{EPOCHS}")
        print(f"Train loss: {avgTrainLoss:.6f}, Train accuracy: {trainCorrect:.4f}")
        print(f"Val loss: {avgValLoss:.6f}, Val accuracy: {valCorrect:.4f}\n")

    # finish measuring how long training took
    endTime = time.time()
    print(f"[INFO] total time taken to train the model: {endTime - startTime:.2f}s")

    # we can now evaluate the network on the test set, in float32 as
    # predict.py uses the saved model
    print("[INFO] evaluating network...")

    # turn off autograd for testing evaluation
    with torch.inference_mode():
        # set the model in evaluation mode
        model.eval()

        # initialize a list to store our predictions (as log-probabilities)
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

    # plot the training loss and accuracy, serialize the model to disk (its
    # weights and plain metadata) and write the reports, each file under a
    # temporary name until all are done, then all at once
    with OutputSet() as outputs:
        save_training_plot(H, outputs.path(args.plot))
        options = {**vars(args), "epochs": EPOCHS, "batch_size": BATCH_SIZE, "lr": INIT_LR,
                   "val_split": VAL_SPLIT}
        save_checkpoint(outputs.path(args.model), model, {
            **model_metadata(model), "options": options, "test_accuracy": testAcc,
            "versions": versions()})
        paths = save_reports(
            outputs, model, args.model, testData.data, testData.targets, testLogProbs, history=H,
            options=options, train_samples=numTrainSamples, val_samples=numValSamples,
            train_seconds=round(endTime - startTime, 3),
            wall_seconds=round(time.time() - runStartTime, 3), device=device.type,
            precision=precision, test_accuracy=testAcc)
        outputs.commit()
    print(f"[INFO] saved the model to {args.model}, the plot to {args.plot}, the confusion "
          f"matrix to {paths['confusion_matrix.png']}, the worst mistakes to "
          f"{paths['mistakes.png']}, the filters and feature maps to {paths['filters.png']} "
          f"and metrics to {paths['metrics.json']}")
    print(f"[INFO] test accuracy: {testAcc:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
