"""Saving and loading trained models safely.

A checkpoint is the model's ``state_dict`` plus plain metadata (strings,
numbers, lists, dicts): exactly what ``torch.load(..., weights_only=True)``
accepts, so loading a model file never runs code hidden in it.
"""

import os
import platform

import torch

from modules.console import UserError, one_line
from modules.data import CLASS_NAMES, HIRAGANA
from modules.lenet import LeNet

CHECKPOINT_FORMAT = "kmnist-lenet-checkpoint"
CHECKPOINT_VERSION = 1
RETRAIN = "train one with `python train.py`, or pass another with -m/--model"


def model_metadata(model):
    """What a checkpoint says about its model, read off the model itself."""
    return {
        "architecture": {"name": type(model).__name__, "numChannels": model.conv1.in_channels,
                         "classes": model.fc2.out_features},
        "class_names": list(CLASS_NAMES),
        "hiragana": list(HIRAGANA),
        "input": {"height": 28, "width": 28, "channels": model.conv1.in_channels,
                  "scaling": "pixel / 255, white ink on a black background"},
    }


def versions():
    """The library versions a model was trained with, for its metadata."""
    import torchvision  # only here: predict.py --image never needs it (1.5 s to import)

    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def save_checkpoint(path, model, **metadata):
    """Write ``model``'s weights (plain CPU tensors, loadable anywhere), what
    the model is, the library versions and ``metadata`` (options, accuracy)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    checkpoint = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                  "state_dict": state, **model_metadata(model), **metadata,
                  "versions": versions()}
    with open(path, "wb") as f:
        torch.save(checkpoint, f)
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
