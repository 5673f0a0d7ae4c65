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
from torch.utils.data import DataLoader, random_split

from modules.data import CLASS_NAMES, KMNISTTensors, load_kmnist, whole_batch
from modules.cli import HelpFormatter, fraction, positive_float, positive_int, seed_value
from modules.cuda_graph import GraphedTrainingStep, graph_problem
from modules.device import DEVICE_CHOICES, choose_device
from modules.errors import UserError, run_main
from modules.lenet import LeNet
from modules.paths import check_writable
from modules.performance import PRECISION_CHOICES, choose_precision, keep_freed_memory_for_reuse
from modules.plots import save_training_plot
from modules.recipes import RECIPES, recipe_parts
from modules.reports import report_paths, save_model_and_reports
from modules.training import evaluate, seed_everything, train_one_epoch

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
                         "on the CPU gives the same numbers")
    ap.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                    help="where to train: auto = CUDA, then MPS, then CPU")
    ap.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                    help="arithmetic of the forward pass: auto = bfloat16 mixed precision on "
                         "CPUs that compute it natively (faster), float32 elsewhere")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="on a CUDA GPU, record the training step once as a CUDA graph and "
                         "replay it (far fewer kernel launches from Python; experimental)")
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

    # set the device we will be using to train the model, and the seeds;
    # on the CPU, let freed memory be reused instead of faulted back in
    device = choose_device(args.device)
    if device.type == "cpu":
        keep_freed_memory_for_reuse()
    graphProblem = graph_problem(device) if args.cuda_graph else None
    if graphProblem:
        raise UserError(f"--cuda-graph: {graphProblem} (leave it out, or use "
                        "--device cuda on a machine with a CUDA GPU)")
    ampDtype = choose_precision(args.precision, device)
    precision = "bf16 mixed precision" if ampDtype is not None else "fp32"
    seed_everything(args.seed)
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
    (trainData, valData) = random_split(
        KMNISTTensors(trainData, device), [numTrainSamples, numValSamples],
        generator=torch.Generator().manual_seed(SPLIT_SEED))

    # initialize the train, validation, and test data loaders; our datasets
    # hand over whole batches, so there is nothing left to collate
    shuffleGenerator = torch.Generator().manual_seed(args.seed)
    trainDataLoader = DataLoader(trainData, shuffle=True, batch_size=BATCH_SIZE,
                                 generator=shuffleGenerator, collate_fn=whole_batch)
    valDataLoader = DataLoader(valData, batch_size=EVAL_BATCH_SIZE, collate_fn=whole_batch)
    testDataLoader = DataLoader(KMNISTTensors(testData, device), batch_size=EVAL_BATCH_SIZE,
                                collate_fn=whole_batch)

    # initialize the LeNet model; channels-last memory is the faster layout
    # for these convolutions on the CPU (see benchmarks/bench_train.py)
    print("[INFO] initializing the LeNet model...")
    model = LeNet(numChannels=1, classes=len(CLASS_NAMES)).to(
        device, memory_format=torch.channels_last)

    # initialize our optimizer and loss function (and, for the improved
    # recipe, its schedule, augmentation and weight averaging)
    parts = recipe_parts(RECIPES[args.recipe], model, lr=INIT_LR, epochs=EPOCHS,
                         steps_per_epoch=len(trainDataLoader), device=device,
                         generator=torch.Generator(device=device).manual_seed(args.seed),
                         capturable=args.cuda_graph)
    # on a GPU, optionally replay the whole training step from a CUDA graph
    graphedStep = (GraphedTrainingStep(model, parts.lossFn, parts.opt, amp_dtype=ampDtype)
                   if args.cuda_graph else None)

    # initialize a dictionary to store training history
    H = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}

    # measure how long training is going to take
    print("[INFO] training the network...")
    startTime = time.time()

    # loop over our epochs
    for e in range(0, EPOCHS):
        (trainLoss, trainAcc) = train_one_epoch(
            model, trainDataLoader, parts.lossFn, parts.opt, device, augment=parts.augment,
            scheduler=parts.scheduler, averaged=parts.averaged, amp_dtype=ampDtype,
            step=graphedStep, description=f"epoch {e + 1}/{EPOCHS}")
        (valLoss, valAcc, _) = evaluate(parts.model_to_evaluate(model), valDataLoader, device,
                                        amp_dtype=ampDtype)

        # update our training history
        H["train_loss"].append(trainLoss)
        H["train_acc"].append(trainAcc)
        H["val_loss"].append(valLoss)
        H["val_acc"].append(valAcc)

        # print the model training and validation information
        print(f"[INFO] EPOCH: {e + 1}/{EPOCHS}")
        print(f"Train loss: {trainLoss:.6f}, Train accuracy: {trainAcc:.4f}")
        print(f"Val loss: {valLoss:.6f}, Val accuracy: {valAcc:.4f}\n")

    # finish measuring how long training took
    endTime = time.time()
    print(f"[INFO] total time taken to train the model: {endTime - startTime:.2f}s")
    if graphedStep is not None and graphedStep.problem:
        print(f"[INFO] the CUDA graph could not be recorded, so every step ran eagerly: "
              f"{graphedStep.problem}")

    # we can now evaluate the network on the test set, in float32 like
    # predict.py uses the saved model
    print("[INFO] evaluating network...")
    finalModel = parts.model_to_evaluate(model)
    (testLoss, testAcc, testLogProbs) = evaluate(finalModel, testDataLoader, device)
    print(classification_report(testData.targets.numpy(), testLogProbs.argmax(1).numpy(),
                                labels=range(len(CLASS_NAMES)), target_names=CLASS_NAMES,
                                digits=4, zero_division=0))

    # plot the training loss and accuracy
    save_training_plot(H, args.plot)

    # serialize the model to disk, with the reports on what it learned
    save_model_and_reports(finalModel, dict(vars(args)), H, test={
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
