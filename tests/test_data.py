"""KMNIST on disk: downloads tried from each source in turn against local HTTP
servers, md5-checked; every missing or broken file one clear message; and
the in-memory batches equal what torchvision's KMNIST gives image by image."""

import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import threading

import pytest
import torch
from torch.utils.data import random_split
from torchvision.datasets import KMNIST
from torchvision.transforms import ToTensor

from kmnist_files import idx_bytes, write_kmnist
from modules import data
from modules.console import UserError
from modules.data import CLASS_NAMES, HIRAGANA, KMNIST_FILES, KMNISTTensors, batches, load_kmnist


def test_class_names_files_and_glyphs_are_torchvisions():
    # written out so that predict.py --image need not import torchvision
    assert CLASS_NAMES == tuple(KMNIST.classes)
    assert KMNIST_FILES == tuple(tuple(r) for r in KMNIST.resources)
    assert data.SOURCES[0] in KMNIST.mirrors
    assert [hex(ord(ch)) for ch in HIRAGANA] == [
        "0x304a", "0x304d", "0x3059", "0x3064", "0x306a",
        "0x306f", "0x307e", "0x3084", "0x308c", "0x3092"]


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Generated KMNIST .gz files, and KMNIST_FILES naming their md5s."""
    folder = tmp_path / "served"
    write_kmnist(folder, n_train=60, n_test=20, gzipped=True)
    raw = folder / "KMNIST" / "raw"
    monkeypatch.setattr(data, "KMNIST_FILES", tuple(
        (name, hashlib.md5((raw / name).read_bytes()).hexdigest()) for (name, _) in KMNIST_FILES))
    return raw


@contextlib.contextmanager
def http_server(folder):
    """A local HTTP server of ``folder``'s files; yields its address."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_address():
    """A loopback address nobody listens on: refused at once."""
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/kmnist/"


def test_a_second_source_is_tried_when_the_first_refuses(served, tmp_path):
    with http_server(served) as second:
        dataset = load_kmnist(tmp_path / "data", train=True,
                              sources=(closed_port_address(), second))
    assert dataset.data.shape == (60, 28, 28)
    assert load_kmnist(tmp_path / "data", train=False, download=False).data.shape == (20, 28, 28)


def test_wrong_bytes_from_a_source_are_refused_and_nothing_is_left_behind(served, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for (name, _) in KMNIST_FILES:
        with gzip.open(wrong / name, "wb") as f:
            f.write(b"something else")
    first = closed_port_address()
    with http_server(wrong) as second:
        with pytest.raises(UserError) as caught:
            load_kmnist(tmp_path / "new" / "data", train=True, sources=(first, second))
    message = str(caught.value)
    assert first in message and second in message and "\n" not in message
    assert "copy the four KMNIST .gz files into" in message
    assert not (tmp_path / "new" / "data").exists()  # nor an empty folder


def test_both_sources_down_is_one_message_naming_both(tmp_path):
    sources = (closed_port_address(), closed_port_address())
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=True, sources=sources)
    message = str(caught.value)
    assert all(source in message for source in sources) and "try again later" in message.lower()
    assert os.listdir(tmp_path) == []


def test_missing_data_without_download_says_where_and_what_to_do(tmp_path):
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=True, download=False)
    message = str(caught.value)
    assert os.path.join(str(tmp_path), "KMNIST", "raw") in message
    assert "--no-download" in message and data.SOURCES[0] in message


def test_a_gz_with_the_wrong_md5_is_named_without_download(tmp_path):
    write_kmnist(tmp_path, n_train=20, n_test=10, gzipped=True)
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz is corrupt .its md5 is not"):
        load_kmnist(tmp_path, train=True, download=False)


@pytest.mark.parametrize("name, content", [
    ("train-images-idx3-ubyte", None),  # truncated to half
    ("t10k-labels-idx1-ubyte", b"this is not an IDX file at all"),
    ("t10k-labels-idx1-ubyte", idx_bytes(torch.zeros(19, dtype=torch.uint8).numpy())),
    ("t10k-labels-idx1-ubyte", idx_bytes(torch.full((20,), 12, dtype=torch.uint8).numpy())),
])
def test_a_broken_extracted_file_is_one_message_saying_delete_and_download(tmp_path, name,
                                                                          content):
    raw = write_kmnist(tmp_path, n_train=50, n_test=20)
    path = os.path.join(raw, name)
    if content is None:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        with open(path, "wb") as f:
            f.write(content)
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=name.startswith("train"), download=False)
    assert raw in str(caught.value) and "delete " in str(caught.value)
    assert "download" in str(caught.value)


def test_torchvision_failing_on_sound_files_is_not_blamed_on_the_files(kmnist_dir, monkeypatch):
    """The files pass their checks (md5 or size) and torchvision fails on them
    anyway (a bug, a mismatched install): no advice to delete and download."""
    import torchvision.datasets

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(torchvision.datasets, "KMNIST", broken)
    with pytest.raises(UserError) as caught:
        load_kmnist(kmnist_dir, train=False, download=False)
    message = str(caught.value)
    assert "torchvision could not read" in message and "TypeError" in message
    assert "delete" not in message and "reinstall torch and torchvision" in message


def test_batches_equal_what_totensor_gives_item_by_item(kmnist_dir):
    reference = KMNIST(root=kmnist_dir, train=True, transform=ToTensor())
    fast = KMNISTTensors(load_kmnist(kmnist_dir, train=True, download=False))
    indices = [5, 0, 1999, 17]
    (images, labels) = fast[indices]
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.float32
    for row, index in enumerate(indices):
        (image, label) = reference[index]
        assert torch.equal(images[row], image) and labels[row].item() == label
    (image, label) = fast[1999]
    assert torch.equal(image, reference[1999][0]) and label.item() == reference[1999][1]


def test_a_loader_over_a_random_split_serves_every_image_once_in_whole_batches(kmnist_dir):
    dataset = load_kmnist(kmnist_dir, train=True, download=False)
    (train, _) = random_split(KMNISTTensors(dataset), [1500, 500],
                              generator=torch.Generator().manual_seed(42))
    loader = batches(train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert [x.shape[0] for x, y in loader] == [64] * 23 + [28] and len(loader) == 24
    seen = torch.cat([y for _, y in loader])
    assert torch.equal(seen.sort().values, dataset.targets[train.indices].sort().values)


def test_a_torchvision_that_does_not_load_with_this_torch_is_one_line(kmnist_dir, monkeypatch):
    """pip can put a torchvision built for another torch beside it; importing
    it then fails (operator torchvision::nms does not exist): one line names
    both versions and how to install a matching pair."""
    import sys

    monkeypatch.setitem(sys.modules, "torchvision", None)  # its import fails, as then
    with pytest.raises(UserError) as caught:
        load_kmnist(kmnist_dir, train=False, download=False)
    message = str(caught.value)
    assert message.startswith("torchvision ") and f"torch {torch.__version__}" in message
    assert "pip install --force-reinstall torch torchvision" in message
