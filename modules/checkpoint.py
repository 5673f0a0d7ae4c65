"""Saving and loading trained models safely.

A checkpoint is a plain dict: the model's ``state_dict`` plus metadata made
of strings, numbers, lists and dicts only.  That is exactly what
``torch.load(..., weights_only=True)`` accepts, so loading a model file can
never run code hidden in it (a whole pickled model, as the tutorial's
``torch.save(model, path)`` writes, is refused with an explanation).
"""

import os
import pickle
import pickletools
import platform
import re
import zipfile

import torch

from modules.data import CLASS_NAMES, HIRAGANA
from modules.cli import UserError, atomic_output
from modules.lenet import LeNet

CHECKPOINT_FORMAT = "kmnist-lenet-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError):
    """The model file is missing, unreadable or not one of ours."""


def model_metadata(model):
    """What a checkpoint says about its model, read off the model itself: the
    architecture ``build_model`` rebuilds, the classes and the input it expects."""
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


def save_checkpoint(path, model, metadata):
    """Write ``model``'s weights and ``metadata`` to ``path`` atomically.

    The file is written next to its destination under a temporary name and
    renamed over it only once complete, so a crash or Ctrl-C never leaves a
    half-written model nor destroys an earlier good one.
    """
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        # plain CPU tensors, so a GPU- or channels-last-trained model loads anywhere
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        **metadata,
    }
    with atomic_output(path) as tmp_path, open(tmp_path, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())


def _pickled_globals(path):
    """The classes and functions a checkpoint's pickle refers to, found by
    reading its opcodes; nothing is unpickled, so nothing in it can run."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            data = archive.read(name)
    except (zipfile.BadZipFile, StopIteration, OSError):
        with open(path, "rb") as f:  # the legacy (pre-zip) format is a bare pickle
            data = f.read()
    found, strings = [], []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":  # protocol <= 3: "module name"
                found.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:  # protocol >= 4
                found.append(".".join(strings[-2:]))
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a broken pickle: we only wanted a hint
        pass
    return found


def _refusal_reason(path, error):
    names = _pickled_globals(path)
    if any(n.endswith(".LeNet") or n.startswith("torch.nn.modules.") for n in names):
        return ("it holds a whole pickled model, as the tutorial's torch.save(model, path) "
                "writes. Loading that would mean running code from the file, which this "
                "project never does. Retrain with `python train.py` to get a safe "
                "checkpoint (weights plus metadata).")
    # torch names the first object it refused; else name what the pickle
    # refers to beyond torch's own tensor machinery
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    others = [n for n in dict.fromkeys(names) if not n.startswith(("torch.", "collections."))]
    shown = refused.group(1) if refused else ", ".join(others[:3]) or "unknown objects"
    return (f"it refers to Python objects other than tensors and plain data ({shown}); "
            "loading it would mean running code from the file, which this project never does.")


# what a file that is not a model file usually is, by its first bytes
_OTHER_KINDS = ((b"\x89PNG", "a PNG picture"), (b"\xff\xd8\xff", "a JPEG picture"),
                (b"GIF8", "a GIF picture"), (b"%PDF", "a PDF document"),
                (b"\x1f\x8b", "a gzip archive"), (b"RIFF", "a RIFF file (WebP, WAV, ...)"))


def _file_kind(path):
    """"zip" (torch.save's format) or "pickle" (its legacy one), else what the
    file is instead of a PyTorch model file, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        return "zip"
    if head.startswith(b"\x80"):  # a pickle's protocol opcode
        return "pickle"
    if not head:
        return "an empty file"
    for (magic, kind) in _OTHER_KINDS:
        if head.startswith(magic):
            return kind
    try:
        if b"\0" not in head:
            head.decode("utf-8")
            return "a text file"
    except UnicodeDecodeError:
        pass
    return "neither a zip archive nor a pickle"


def _zip_damage(path):
    """What is wrong with a file that starts like a zip archive, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return "a zip archive without the data.pkl that torch.save writes"
            bad = archive.testzip()  # reads every member and checks its CRC
            return f"{bad} inside it fails its checksum" if bad else None
    except (zipfile.BadZipFile, EOFError) as error:
        return ("it starts as a zip archive, as model files do, but the rest of the archive "
                f"is missing or broken; Python's zipfile says: {error}")


def load_checkpoint(path):
    """Read a checkpoint with ``weights_only=True`` and check it is one of ours."""
    if not os.path.exists(path):
        raise CheckpointError(f"model file not found: {os.path.abspath(path)}\n"
                              "Train one first with `python train.py` (or pass -m/--model).")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a model file")
    if not os.path.isfile(path):  # reading a named pipe would wait forever
        raise CheckpointError(f"{path} is not a regular file (a named pipe or a device?), "
                              "not a model file")
    kind = _file_kind(path)
    if kind not in ("zip", "pickle"):
        raise CheckpointError(f"{path} is not a PyTorch model file: it is {kind}. Pass the "
                              "model.pth that train.py writes (-m/--model).")
    damage = _zip_damage(path) if kind == "zip" else None
    if damage:
        raise CheckpointError(f"{path} is damaged or truncated ({damage}); train again with "
                              "`python train.py`, or copy the file again.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"refusing to load {path}: {_refusal_reason(path, error)}") from None
    except Exception as error:  # noqa: BLE001 - reported in one line, as it is
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise CheckpointError(f"torch {torch.__version__} could not read {path} "
                              f"({type(error).__name__}: {reason})") from None

    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        kind = "a bare state_dict" if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a checkpoint written by train.py (it holds "
                              f"{kind}, with no class names or input description)\n"
                              "Retrain with `python train.py`.")
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version "
                              f"{checkpoint.get('format_version')!r}; this code reads version "
                              f"{CHECKPOINT_VERSION}. Retrain with `python train.py`.")
    return checkpoint


def build_model(checkpoint, expected_classes, path="model file"):
    """Rebuild LeNet from a checkpoint, refusing one made for something else."""
    arch = checkpoint.get("architecture", {})
    if arch.get("name") != "LeNet":
        raise CheckpointError(f"{path} holds a {arch.get('name')!r} model, not LeNet")
    if arch.get("classes") != len(expected_classes):
        raise CheckpointError(f"{path} was trained for {arch.get('classes')} classes; KMNIST "
                              f"has {len(expected_classes)}. Retrain with `python train.py`.")
    if list(checkpoint.get("class_names", [])) != list(expected_classes):
        raise CheckpointError(f"{path} names its classes {checkpoint.get('class_names')}, "
                              f"not KMNIST's {list(expected_classes)}")
    model = LeNet(numChannels=arch.get("numChannels", 1), classes=arch["classes"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"the weights in {path} do not fit LeNet(numChannels="
                              f"{arch.get('numChannels')}, classes={arch['classes']}): "
                              f"{first}") from None
    model.eval()
    return model
