import os
import pickle
import re

import pytest
import torch

from modules.checkpoint import (CheckpointError, build_model, load_checkpoint,
                                save_checkpoint)
from modules.data import CLASS_NAMES
from modules.lenet import LeNet

METADATA = {
    "architecture": {"name": "LeNet", "numChannels": 1, "classes": 10},
    "class_names": list(CLASS_NAMES),
    "options": {"epochs": 1, "lr": 0.001, "device": "cpu", "flag": None},
    "test_accuracy": 0.5,
}


def saved(tmp_path, model=None, metadata=METADATA, name="model.pth"):
    path = tmp_path / name
    save_checkpoint(path, model or LeNet(1, 10), metadata)
    return path


def test_round_trip_restores_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = LeNet(1, 10).to(memory_format=torch.channels_last)
    path = saved(tmp_path, model)
    checkpoint = load_checkpoint(path)
    assert checkpoint["options"] == METADATA["options"]
    assert checkpoint["test_accuracy"] == 0.5
    restored = build_model(checkpoint, CLASS_NAMES)
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    assert not restored.training
    assert os.listdir(tmp_path) == ["model.pth"]  # no temporary file left behind


def test_a_failed_save_keeps_the_earlier_model(tmp_path, monkeypatch):
    path = saved(tmp_path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, LeNet(1, 10), METADATA)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pth"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="(?s)model file not found.*python train.py"):
        load_checkpoint(tmp_path / "nope.pth")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content, kind", [
    (b"hello, I am not a model\n", "a text file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG picture"),
    (b"\xff\xd8\xff\xe0" + bytes(100), "a JPEG picture"),
    (b"", "an empty file"),
    (bytes(range(256)), "neither a zip archive nor a pickle"),
])
def test_a_file_that_is_no_model_file_is_named_for_what_it_is(tmp_path, content, kind):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert f"is not a PyTorch model file: it is {kind}. Pass the model.pth" in message
    assert "refusing" not in message and "damaged" not in message


def test_truncated_file_is_called_damaged(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == (
        f"{path} is damaged or truncated (it starts as a zip archive, as model files do, but "
        "the rest of the archive is missing or broken; Python's zipfile says: File is not a "
        "zip file); train again with `python train.py`, or copy the file again.")


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "model.pth"
    os.mkfifo(path)
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_checkpoint(path)


def test_a_zip_archive_that_is_no_model_file(tmp_path):
    import zipfile

    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="without the data.pkl that torch.save writes"):
        load_checkpoint(path)


def test_a_failure_that_is_not_the_files_fault_is_reported_as_it_is(tmp_path, monkeypatch):
    path = saved(tmp_path)

    def broken_load(*args, **kwargs):
        raise RuntimeError("something inside torch.load went wrong")

    monkeypatch.setattr(torch, "load", broken_load)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert f"could not read {path} (RuntimeError: something inside torch.load" in message
    for blame in ("damaged", "truncated", "retrain", "Retrain", "train again", "corrupt"):
        assert blame not in message


def test_whole_pickled_model_as_the_tutorial_saves_it(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(LeNet(1, 10), path)  # the tutorial's torch.save(model, ...)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "whole pickled model" in message and "python train.py" in message


class Exploit:
    """Unpickling this would create a marker file: it must never happen."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")  # torch's, expected here
def test_code_in_a_checkpoint_is_never_run(tmp_path, legacy):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    path = tmp_path / "model.pth"
    payload = {"format": "kmnist-lenet-checkpoint", "state_dict": {}, "evil": Exploit()}
    if legacy:  # a bare pickle, the pre-zip format, in a protocol torch does not write
        path.write_bytes(pickle.dumps(payload, protocol=4))
    else:
        torch.save(payload, path)
    assert not marker.exists()
    # the global as pickle recorded it: io.open on Python 3.11, _io.open on 3.12+
    pickled_as = re.escape(f"{open.__module__}.{open.__qualname__}")
    with pytest.raises(CheckpointError, match=rf"refusing to load.*\({pickled_as}\)"):
        load_checkpoint(path)
    assert not marker.exists()


def test_bare_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(LeNet(1, 10).state_dict(), path)
    with pytest.raises(CheckpointError,
                       match="not a checkpoint written by train.py.*bare state_dict"):
        load_checkpoint(path)


def test_checkpoint_for_another_class_count(tmp_path):
    metadata = dict(METADATA, architecture={"name": "LeNet", "numChannels": 1, "classes": 26})
    path = saved(tmp_path, LeNet(1, 26), metadata)
    with pytest.raises(CheckpointError, match="trained for 26 classes; KMNIST has 10"):
        build_model(load_checkpoint(path), CLASS_NAMES, str(path))


def test_checkpoint_for_another_architecture(tmp_path):
    metadata = dict(METADATA, architecture={"name": "ResNet18", "numChannels": 1, "classes": 10})
    path = saved(tmp_path, LeNet(1, 10), metadata)
    with pytest.raises(CheckpointError, match="'ResNet18' model, not LeNet"):
        build_model(load_checkpoint(path), CLASS_NAMES, str(path))


def test_weights_that_do_not_fit_lenet(tmp_path):
    path = saved(tmp_path, LeNet(3, 10))  # metadata claims 1 channel
    with pytest.raises(CheckpointError, match="do not fit LeNet"):
        build_model(load_checkpoint(path), CLASS_NAMES, str(path))


def test_newer_format_version_is_refused(tmp_path):
    path = saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["format_version"] = 99
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
