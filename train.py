# USAGE
# python train.py --model output/model.pth --plot output/plot.png
"""Train LeNet on Kuzushiji-MNIST (KMNIST), following the tutorial's steps.

Writes the model (a safe checkpoint) and the loss/accuracy plot, and beside
the model the confusion matrix, the worst mistakes, the learned filters and
metrics.json; prints the tutorial's console output.
"""

# import the necessary packages
import argparse
import os
import time

import torch
from sklearn.metrics import classification_report
from torch import nn
from torch.nn import functional as F
from torch.optim import Adam, AdamW
from torch.utils.data import DataLoader, random_split

from modules.checkpoint import model_metadata, save_checkpoint, versions
from modules.cli import (HelpFormatter, UserError, check_writable, fraction, positive_float,
                         positive_int, progress, run_main, seed_value)
from modules.data import CLASS_NAMES, KMNISTTensors, load_kmnist, whole_batch
from modules.lenet import LeNet
from modules.hardware import (DEVICE_CHOICES, PRECISION_CHOICES, autocast, choose_device,
                              choose_precision, graph_problem, keep_freed_memory_for_reuse,
                              record_training_graph)
from modules.recipes import RECIPES
from modules.reports import report_paths, save_reports, save_training_plot

# the split is always made with seed 42, as in the tutorial (which trains
# on 75% of the training images and validates on 25%: the tutorial recipe's
# --val-split)
SPLIT_SEED = 42
# evaluation needs no gradients, so it can take much larger batches
EVAL_BATCH_SIZE = 1000


def parse_args(argv=None):
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
                    help="how to train: " + "; ".join(
                        f"{r.name} = {r.description} ({r.epochs} epochs, batch "
                        f"{r.batch_size}, lr {r.lr:g})" for r in RECIPES.values()))
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help="epochs to train (default: the recipe's, 10 for tutorial)")
    ap.add_argument("--batch-size", type=positive_int, default=None,
                    help="training batch size (default: the recipe's, 64 for tutorial)")
    ap.add_argument("--lr", type=positive_float, default=None,
                    help="learning rate (default: the recipe's, 1e-3 for tutorial)")
    ap.add_argument("--val-split", type=fraction, default=None,
                    help="fraction of the 60,000 training images held out for validation "
                         "(default: the recipe's, 0.25 for tutorial, 0.05 for improved)")
    ap.add_argument("--seed", type=seed_value, default=42,
                    help="seed for weights, shuffling and augmentation; the same seed "
                         "gives the same numbers on the same CPU (other CPUs' bfloat16 "
                         "and float32 kernels round differently)")
    ap.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                    help="where to train: auto = CUDA, then MPS, then CPU")
    ap.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                    help="arithmetic of the forward pass: auto = bfloat16 mixed precision on "
                         "CPUs that compute it natively (faster), float32 elsewhere")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="on a CUDA GPU, record the forward and backward pass once as CUDA "
                         "graphs and replay them (far fewer kernel launches from Python; "
                         "experimental)")
    ap.add_argument("--no-download", action="store_true",
                    help="never download; use only files already in --data-dir")
    args = ap.parse_args(argv)
    recipe = RECIPES[args.recipe]
    args.epochs = args.epochs or recipe.epochs
    args.batch_size = args.batch_size or recipe.batch_size
    args.lr = args.lr or recipe.lr
    args.val_split = args.val_split or recipe.val_split
    return args


def main(argv=None):
    runStartTime = time.time()
    args = parse_args(argv)
    recipe = RECIPES[args.recipe]
    # fail now, not after training, if an output file cannot be written
    check_writable(args.model, "--model")
    check_writable(args.plot, "--plot")
    for (name, path) in report_paths(args.model).items():
        check_writable(path, name)

    # define training hyperparameters
    INIT_LR = args.lr
    BATCH_SIZE = args.batch_size
    EPOCHS = args.epochs

    # define the train and val splits
    VAL_SPLIT = args.val_split
    TRAIN_SPLIT = 1 - VAL_SPLIT

    # set the device we will be using to train the model, and the seed
    device = choose_device(args.device)
    graphProblem = graph_problem(device) if args.cuda_graph else None
    if graphProblem:
        raise UserError(f"--cuda-graph: {graphProblem} (leave it out, or use "
                        "--device cuda on a machine with a CUDA GPU)")
    # on the CPU, freed memory is kept for reuse instead of being returned
    # to the kernel and faulted back in: an epoch 24% shorter (docs/performance.md)
    if device.type == "cpu":
        keep_freed_memory_for_reuse()
    # bfloat16 mixed precision where the CPU computes it natively, else float32
    ampDtype = choose_precision(args.precision, device)
    precision = "bf16 mixed precision" if ampDtype is not None else "fp32"
    torch.manual_seed(args.seed)
    print(f"[INFO] training on {device.type} ({precision}) with the {args.recipe} recipe "
          f"({EPOCHS} epochs, batch {BATCH_SIZE}, lr {INIT_LR:g}, "
          f"{TRAIN_SPLIT:.0%}/{VAL_SPLIT:.0%} train/val split, seed {args.seed})")

    # load the KMNIST dataset
    print("[INFO] loading the KMNIST dataset...")
    trainData = load_kmnist(args.data_dir, train=True, download=not args.no_download)
    testData = load_kmnist(args.data_dir, train=False, download=not args.no_download)

    # calculate the train/validation split
    print("[INFO] generating the train/validation split...")
    numValSamples = round(len(trainData) * VAL_SPLIT)
    numTrainSamples = len(trainData) - numValSamples
    if numValSamples == 0 or numTrainSamples == 0:
        emptySide = "validate on" if numValSamples == 0 else "train on"
        raise UserError(f"--val-split {VAL_SPLIT:g} of {len(trainData)} training images "
                        f"leaves nothing to {emptySide}; "
                        "choose a split that leaves at least one image on each side")
    # (the images are held in memory as one tensor on the device, and each
    # DataLoader step takes a whole batch from it: modules/data.py)
    (trainData, valData) = random_split(
        KMNISTTensors(trainData, device), [numTrainSamples, numValSamples],
        generator=torch.Generator().manual_seed(SPLIT_SEED))

    # initialize the train, validation, and test data loaders; our datasets
    # hand over whole batches, so there is nothing left to collate
    trainDataLoader = DataLoader(trainData, shuffle=True, batch_size=BATCH_SIZE,
                                 generator=torch.Generator().manual_seed(args.seed),
                                 collate_fn=whole_batch)
    valDataLoader = DataLoader(valData, batch_size=EVAL_BATCH_SIZE, collate_fn=whole_batch)
    testDataLoader = DataLoader(KMNISTTensors(testData, device), batch_size=EVAL_BATCH_SIZE,
                                collate_fn=whole_batch)

    # initialize the LeNet model; channels-last memory is the faster layout
    # for these convolutions on the CPU (an epoch 17% shorter, docs/performance.md)
    print("[INFO] initializing the LeNet model...")
    model = LeNet(numChannels=1, classes=len(CLASS_NAMES)).to(
        device, memory_format=torch.channels_last)

    # initialize our optimizer and loss function: the tutorial's Adam and
    # NLLLoss. The fused kernel updates all the weights in one pass; the
    # improved recipes decay the weights (AdamW) and smooth the labels (LeNet
    # outputs log-probabilities, which log_softmax leaves as they are, so
    # CrossEntropyLoss on them is NLLLoss plus the smoothing)
    fused = True if device.type in ("cpu", "cuda") else None
    if recipe.weight_decay:
        opt = AdamW(model.parameters(), lr=INIT_LR, weight_decay=recipe.weight_decay,
                    fused=fused)
    else:
        opt = Adam(model.parameters(), lr=INIT_LR, fused=fused)
    if recipe.label_smoothing:
        lossFn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    else:
        lossFn = nn.NLLLoss()
    # the improved recipes also step a one-cycle schedule after every
    # batch and distort every image
    scheduler = recipe.schedule(opt, INIT_LR, EPOCHS, len(trainDataLoader))
    augment = recipe.augmentation(torch.Generator(device=device).manual_seed(args.seed))

    # on a CUDA GPU, --cuda-graph records the forward and backward pass of
    # a full batch once and replays them (modules/hardware.py)
    if args.cuda_graph:
        problem = record_training_graph(model, (BATCH_SIZE, 1, 28, 28), ampDtype)
        print("[INFO] recorded the forward and backward pass as CUDA graphs" if not problem
              else f"[INFO] the CUDA graph could not be recorded, so training runs "
                   f"without it: {problem}")

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
        # of correct predictions in the training and validation step; they
        # stay on the device and are read once per epoch, after the loops
        totalTrainLoss = torch.zeros((), device=device)
        totalValLoss = torch.zeros((), device=device)
        trainCorrect = torch.zeros((), dtype=torch.long, device=device)
        valCorrect = torch.zeros((), dtype=torch.long, device=device)

        # loop over the training set (with a progress bar on a terminal)
        for (x, y) in progress(trainDataLoader, f"epoch {e + 1}/{EPOCHS}"):
            # send the input to the device (a no-op: the data is there already)
            (x, y) = (x.to(device), y.to(device))
            # improved recipes: a random distortion of every image
            if augment is not None:
                x = augment(x)
            x = x.contiguous(memory_format=torch.channels_last)

            # perform a forward pass and calculate the training loss (in
            # bfloat16 mixed precision where chosen; the weights stay float32)
            with autocast(device, ampDtype):
                pred = model(x)
                loss = lossFn(pred, y)

            # zero out the gradients, perform the backpropagation step,
            # and update the weights
            opt.zero_grad()
            loss.backward()
            opt.step()
            # improved recipes: the next learning rate
            if scheduler is not None:
                scheduler.step()

            # add the loss to the total training loss so far (the batch's
            # mean times its size, so that the last, smaller batch counts for
            # what it is) and calculate the number of correct predictions;
            # the history compares plain NLL with plain NLL, so where the
            # recipe minimises a label-smoothed loss, the NLL is taken apart
            batchNLL = (F.nll_loss(pred.detach().float(), y) if recipe.label_smoothing
                        else loss.detach())
            totalTrainLoss += batchNLL * y.size(0)
            trainCorrect += (pred.argmax(1) == y).sum()

        # switch off autograd for evaluation
        with torch.inference_mode():
            # set the model in evaluation mode
            model.eval()

            # loop over the validation set
            for (x, y) in valDataLoader:
                # send the input to the device
                (x, y) = (x.to(device), y.to(device))

                # make the predictions and calculate the validation loss
                # (plain NLL, without the label smoothing of training)
                with autocast(device, ampDtype):
                    pred = model(x.contiguous(memory_format=torch.channels_last)).float()
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

        # initialize a list to store our predictions, kept as the
        # log-probabilities (how sure the model was) for the reports
        testLogProbs = []

        # loop over the test set
        for (x, _) in testDataLoader:
            # send the input to the device and make the predictions
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            testLogProbs.append(model(x).float().cpu())

    # generate a classification report
    testLogProbs = torch.cat(testLogProbs)
    preds = testLogProbs.argmax(1)
    print(classification_report(testData.targets.numpy(), preds.numpy(),
                                labels=range(len(CLASS_NAMES)), target_names=CLASS_NAMES,
                                digits=4, zero_division=0))
    testLoss = F.nll_loss(testLogProbs, testData.targets).item()
    testAcc = (preds == testData.targets).float().mean().item()

    # plot the training loss and accuracy
    save_training_plot(H, args.plot)

    # serialize the model to disk: its weights (the state_dict) and plain
    # metadata, never a pickled model, written whole or not at all
    options = dict(vars(args))
    save_checkpoint(args.model, model, {**model_metadata(model), "options": options,
                                        "test_accuracy": testAcc, "versions": versions()})

    # and beside it, the reports on what the model learned and got wrong
    save_reports(model, options, H, test={
        "images": testData.data, "targets": testData.targets, "log_probs": testLogProbs,
        "loss": testLoss, "accuracy": testAcc,
    }, run={
        "train_samples": numTrainSamples, "val_samples": numValSamples,
        "train_seconds": endTime - startTime, "start_time": runStartTime,
        "device": device.type, "precision": precision,
    })
    print(f"[INFO] test accuracy: {testAcc:.4f}")
    return 0


if __name__ == "__main__":
    run_main(main)
