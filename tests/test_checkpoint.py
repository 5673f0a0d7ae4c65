"""Model files: a round trip, and every wrong file refused in one line that
names the file and the fix, without running anything that is in it."""

import os
import pickle

import pytest
import torch

from modules.checkpoint import (build_model, half_weights, load_checkpoint, load_epochs,
                                save_checkpoint, save_epochs)
from modules.console import UserError
from modules.lenet import LeNet

FIX = "python train.py"


def saved(tmp_path, model=None, **changes):
    path = tmp_path / "model.pth"
    model = model or LeNet(1, 10)
    save_checkpoint(path, model, **{"options": {"epochs": 1}, **changes})
    return path


def refused(path, build=False):
    """The message load_checkpoint (and build_model) gives for ``path``."""
    with pytest.raises(UserError) as caught:
        checkpoint = load_checkpoint(path)
        if build:
            build_model(checkpoint, str(path))
    message = str(caught.value)
    assert str(path) in message and FIX in message and "\n" not in message, message
    return message


def test_round_trip_restores_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = LeNet(1, 10).to(memory_format=torch.channels_last)
    checkpoint = load_checkpoint(saved(tmp_path, model))
    assert checkpoint["options"] == {"epochs": 1} and checkpoint["class_names"][1] == "ki"
    restored = build_model(checkpoint, "model.pth")
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    assert not restored.training


class Exploit:
    """Unpickling this would create a marker file: it must never happen."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_text(path):
    path.write_text("not a model")


def write_png(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))


def write_truncated(path):
    data = saved(path.parent).read_bytes()
    path.write_bytes(data[:len(data) // 2])


def write_whole_model(path):
    torch.save(LeNet(1, 10), path)  # the tutorial's torch.save(model, ...)


def write_state_dict(path):
    torch.save(LeNet(1, 10).state_dict(), path)


def write_newer_format(path):
    checkpoint = torch.load(saved(path.parent), weights_only=True)
    torch.save({**checkpoint, "format_version": 99}, path)


def write_exploit(path):
    Exploit.marker = path.parent / "pwned"
    torch.save({"format": "kmnist-lenet-checkpoint", "evil": Exploit()}, path)


def write_legacy_exploit(path):
    Exploit.marker = path.parent / "pwned"
    path.write_bytes(pickle.dumps({"evil": Exploit()}, protocol=4))  # a bare (pre-zip) pickle


@pytest.mark.parametrize("write", [write_text, write_png, write_truncated, write_whole_model,
                                   write_state_dict, write_newer_format, write_exploit,
                                   write_legacy_exploit, lambda path: path.write_bytes(b""),
                                   lambda path: path.mkdir(), lambda path: os.mkfifo(path)])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")  # torch's, expected here
def test_a_wrong_file_is_refused_in_one_line(tmp_path, write):
    path = tmp_path / "other.pth"
    write(path)
    refused(path)
    assert not (tmp_path / "pwned").exists()  # nothing in the file ran


def test_a_missing_file_is_named_with_its_full_path(tmp_path):
    assert "not found" in refused(tmp_path / "nope.pth")


@pytest.mark.parametrize("model, changes", [
    (LeNet(1, 26), {}),  # another class count
    (LeNet(1, 10), {"architecture": {"name": "ResNet18", "numChannels": 1, "classes": 10}}),
    (LeNet(3, 10), {"architecture": {"name": "LeNet", "numChannels": 1, "classes": 10}}),
    (LeNet(1, 10), {"class_names": ["a"] * 10}),
])
def test_a_checkpoint_for_another_model_is_refused(tmp_path, model, changes):
    refused(saved(tmp_path, model, **changes), build=True)


def test_the_epochs_file_round_trips_and_a_wrong_one_is_refused(tmp_path):
    """epochs.pth is read only as the epochs of this very model: another
    training's, a model file, damaged bytes or a folder are refused, named."""
    torch.manual_seed(0)
    (model, other) = (LeNet(1, 10), LeNet(1, 10))
    path = tmp_path / "epochs.pth"
    save_epochs(path, [half_weights(other), half_weights(model)])
    epochs = load_epochs(path, model)
    assert len(epochs) == 2 and torch.equal(epochs[0]["fc2.bias"], other.fc2.bias.half())
    with pytest.raises(UserError, match="another training"):
        load_epochs(path, other)
    for (k, write) in enumerate((lambda p: save_checkpoint(p, model), write_truncated,
                                 lambda p: p.mkdir(), lambda p: save_epochs(p, []))):
        wrong = tmp_path / f"wrong-{k}.pth"
        write(wrong)
        with pytest.raises(UserError, match=f"^{wrong}"):
            load_epochs(wrong, model)
