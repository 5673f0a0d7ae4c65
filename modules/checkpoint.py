"""Saving and loading trained models safely.

A checkpoint is the model's ``state_dict`` plus plain metadata (strings,
numbers, lists, dicts): exactly what ``torch.load(..., weights_only=True)``
accepts, so loading a model file never runs code hidden in it.
"""

import os

import torch

from modules.console import UserError, one_line
from modules.data import CLASS_NAMES
from modules.lenet import LeNet

CHECKPOINT_FORMAT = "kmnist-lenet-checkpoint"
CHECKPOINT_VERSION = 1
EPOCHS_FORMAT = "kmnist-lenet-epochs"  # the weights of each epoch, beside the model
RETRAIN = "train one with `python train.py`, or pass another with -m/--model"


def save_checkpoint(path, model, **metadata):
    """Write ``model``'s weights (plain CPU tensors, loadable anywhere), what
    the model is and ``metadata`` (options, test accuracy)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    arch = {"name": type(model).__name__, "numChannels": model.conv1.in_channels,
            "classes": model.fc2.out_features}
    _write(path, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                  "state_dict": state, "architecture": arch, "class_names": list(CLASS_NAMES),
                  **metadata})


def half_weights(model):
    """``model``'s weights as they are now, in half precision on the CPU
    (LeNet's: 0.86 MB), for the file of the weights of each epoch."""
    return {k: v.detach().to("cpu", torch.float16, memory_format=torch.contiguous_format,
                             copy=True) for k, v in model.state_dict().items()}


def save_epochs(path, weights):
    """Write the weights of each epoch (a list of ``half_weights``, epoch 0 first)."""
    _write(path, {"format": EPOCHS_FORMAT, "format_version": CHECKPOINT_VERSION,
                  "epochs": weights})


def _write(path, content):
    with open(path, "wb") as f:
        torch.save(content, f)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(path):
    """Read a checkpoint with ``weights_only=True`` and check it is train.py's."""
    if not os.path.exists(path):
        raise UserError(f"model file not found: {os.path.abspath(path)}; {RETRAIN}")
    if not os.path.isfile(path):  # a folder, or a named pipe that would wait forever
        raise UserError(f"{path} is not a regular file; {RETRAIN}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a picture, notes, a truncated archive, a pickled model:
        # (torch's advice, to load the file unsafely, is not ours)
        raise UserError(f"{path} is not a model file that train.py wrote, or it is damaged; "
                        f"{RETRAIN}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT \
            or checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise UserError(f"{path} is not a checkpoint of this version of train.py; {RETRAIN}")
    return checkpoint


def describe_model(checkpoint):
    """What predict.py says of a model: its recipe, epochs, seed and test accuracy."""
    options = checkpoint.get("options", {})
    accuracy = checkpoint.get("test_accuracy")
    return (f"LeNet trained with the {options.get('recipe', '?')} recipe ({options.get('epochs')} "
            f"epochs, seed {options.get('seed')}), test accuracy "
            + (f"{accuracy:.2%}" if isinstance(accuracy, float) else "unknown"))


def build_model(checkpoint, path):
    """Rebuild LeNet from a checkpoint, refusing one made for something else."""
    arch = checkpoint.get("architecture", {})
    if (arch.get("name"), arch.get("classes"), checkpoint.get("class_names")) != \
            ("LeNet", len(CLASS_NAMES), list(CLASS_NAMES)):
        raise UserError(f"{path} holds a {arch.get('name')} model for the classes "
                        f"{checkpoint.get('class_names')}, not LeNet for KMNIST's; {RETRAIN}")
    try:
        model = LeNet(numChannels=arch["numChannels"], classes=arch["classes"])
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as error:  # noqa: BLE001 - weights of another shape, missing keys
        raise UserError(f"the weights in {path} do not fit LeNet ({one_line(error)}); "
                        f"{RETRAIN}") from None
    return model.eval()


def load_epochs(path, model):
    """The weights of each epoch in ``path`` (train.py writes them beside the
    model), checked to be ``model``'s own: its last epoch is ``model``.
    Raises UserError where the file is not that."""
    if not os.path.isfile(path):  # a folder, or a named pipe that would wait forever
        raise UserError(f"{path} is not a regular file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
        epochs = content["epochs"] if content.get("format") == EPOCHS_FORMAT else []
        if not epochs:
            raise ValueError("no epochs")
        scratch = LeNet(model.conv1.in_channels, model.fc2.out_features)
        for weights in epochs:
            scratch.load_state_dict(weights)
    except Exception:  # noqa: BLE001 - damaged, another file, weights of another shape
        raise UserError(f"{path} is not a file of epochs that train.py wrote, or it is "
                        "damaged") from None
    if any(not torch.equal(epochs[-1][k], v) for (k, v) in half_weights(model).items()):
        raise UserError(f"{path} holds the epochs of another training than this model's")
    return epochs
