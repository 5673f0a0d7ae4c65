import os

import pytest
import torch
from torchvision.datasets import KMNIST
from torchvision.transforms import ToTensor
from torch.utils.data import DataLoader, random_split

from kmnist_files import idx_bytes, write_kmnist
from modules.data import (CLASS_NAMES, HIRAGANA, KMNIST_FILES, KMNIST_SOURCE, KMNISTTensors,
                          load_kmnist, whole_batch)
from modules.console import UserError


def test_class_names_and_glyphs():
    assert CLASS_NAMES == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    # written out so that predict.py need not import torchvision: they must be its own
    assert CLASS_NAMES == tuple(KMNIST.classes)
    assert KMNIST_FILES == tuple(tuple(r) for r in KMNIST.resources)
    assert KMNIST_SOURCE in KMNIST.mirrors
    assert [hex(ord(ch)) for ch in HIRAGANA] == [
        "0x304a", "0x304d", "0x3059", "0x3064", "0x306a",
        "0x306f", "0x307e", "0x3084", "0x308c", "0x3092"]


def test_generated_files_load_through_torchvision(kmnist_dir):
    train = load_kmnist(kmnist_dir, train=True, download=False)
    test = load_kmnist(kmnist_dir, train=False, download=False)
    assert train.data.shape == (2000, 28, 28) and test.data.shape == (200, 28, 28)
    assert sorted(train.targets.unique().tolist()) == list(range(10))


def test_batches_equal_what_totensor_gives_item_by_item(kmnist_dir):
    reference = KMNIST(root=kmnist_dir, train=True, transform=ToTensor())
    fast = KMNISTTensors(load_kmnist(kmnist_dir, train=True, download=False))
    indices = [5, 0, 1999, 17]
    images, labels = fast.__getitems__(indices)
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.float32
    for row, index in enumerate(indices):
        image, label = reference[index]
        assert torch.equal(images[row], image)
        assert labels[row].item() == label
    image, label = fast[1999]
    assert torch.equal(image, reference[1999][0]) and label.item() == reference[1999][1]


def test_dataloader_over_a_random_split_serves_whole_batches(kmnist_dir):
    data = KMNISTTensors(load_kmnist(kmnist_dir, train=True, download=False))
    train, val = random_split(data, [1500, 500], generator=torch.Generator().manual_seed(42))
    loader = DataLoader(train, batch_size=64, shuffle=True, collate_fn=whole_batch,
                        generator=torch.Generator().manual_seed(0))
    sizes = [x.shape[0] for x, y in loader]
    assert sizes == [64] * 23 + [28]
    seen = torch.cat([y for _, y in loader])
    assert len(seen) == 1500
    assert torch.equal(seen.sort().values, data.targets[train.indices].sort().values)


def test_missing_data_without_download_explains_what_to_put_where(tmp_path):
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=True, download=False)
    message = str(caught.value)
    assert "not found" in message and "--no-download" in message
    assert os.path.join(str(tmp_path), "KMNIST", "raw") in message
    for name, md5 in KMNIST_FILES[:2]:  # the training set's two files
        assert f"{name}  md5 {md5}  [missing]" in message
    assert "t10k" not in message and "--data-dir" in message


def test_the_test_set_alone_is_enough_to_read_the_test_set(tmp_path):
    raw = write_kmnist(tmp_path, n_train=20, n_test=10)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        os.remove(os.path.join(raw, name))
    assert load_kmnist(tmp_path, train=False, download=False).data.shape == (10, 28, 28)
    with pytest.raises(UserError, match="the KMNIST training set was not found"):
        load_kmnist(tmp_path, train=True, download=False)


def test_failed_download_gives_one_message_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    # a loopback port nobody listens on: refused at once, no real network
    monkeypatch.setattr(KMNIST, "mirrors", ["http://127.0.0.1:9/kmnist/"])
    data_dir = tmp_path / "new" / "data"
    with pytest.raises(UserError) as caught:
        load_kmnist(data_dir, train=True, download=True)
    message = str(caught.value)
    assert message.startswith("could not download KMNIST")
    assert all(name in message and md5 in message for name, md5 in KMNIST_FILES[:2])
    assert "[missing]" in message
    assert not data_dir.exists() and (tmp_path / "new").exists()  # only what it made


def test_gz_with_wrong_md5_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setattr(KMNIST, "mirrors", ["http://127.0.0.1:9/kmnist/"])
    write_kmnist(tmp_path, n_train=20, n_test=10, gzipped=True)
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=True, download=True)
    assert "md5 does NOT match" in str(caught.value)
    with pytest.raises(UserError) as caught:  # nothing will download it again
        load_kmnist(tmp_path, train=True, download=False)
    assert "train-images-idx3-ubyte.gz is corrupt (its md5 is not" in str(caught.value)


def test_truncated_image_file_is_reported_as_corrupt(tmp_path):
    raw = write_kmnist(tmp_path, n_train=50, n_test=20)
    path = os.path.join(raw, "train-images-idx3-ubyte")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=True, download=False)
    message = str(caught.value)
    assert f"{path} is corrupt (truncated: 19,608 of the 39,216 bytes its header announces)" \
        in message
    assert "delete it" in message and "train-images-idx3-ubyte.gz" in message


def test_garbage_file_is_reported_as_corrupt(tmp_path):
    raw = write_kmnist(tmp_path, n_train=50, n_test=20)
    with open(os.path.join(raw, "t10k-labels-idx1-ubyte"), "wb") as f:
        f.write(b"this is not an IDX file at all")
    with pytest.raises(UserError, match="corrupt .not an IDX file"):
        load_kmnist(tmp_path, train=False, download=False)


def test_a_failure_that_is_not_the_files_fault_is_reported_as_it_is(tmp_path, monkeypatch):
    import torchvision.datasets.mnist

    write_kmnist(tmp_path, n_train=50, n_test=20)

    def broken_reader(path):
        raise TypeError("a reader that changed in a new torchvision")

    monkeypatch.setattr(torchvision.datasets.mnist, "read_image_file", broken_reader)
    with pytest.raises(UserError) as caught:
        load_kmnist(tmp_path, train=False, download=False)
    message = str(caught.value)
    assert message.startswith("torchvision could not read the KMNIST test files in ")
    assert "(TypeError: a reader that changed in a new torchvision)" in message
    assert "corrupt" not in message and "delete" not in message


def test_label_count_that_does_not_match_images_is_refused(tmp_path):
    raw = write_kmnist(tmp_path, n_train=50, n_test=20)
    with open(os.path.join(raw, "t10k-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_bytes(torch.zeros(19, dtype=torch.uint8).numpy()))
    with pytest.raises(UserError, match="20 images but 19 labels"):
        load_kmnist(tmp_path, train=False, download=False)


def test_out_of_range_labels_are_refused(tmp_path):
    raw = write_kmnist(tmp_path, n_train=50, n_test=20)
    with open(os.path.join(raw, "t10k-labels-idx1-ubyte"), "wb") as f:
        f.write(idx_bytes(torch.full((20,), 12, dtype=torch.uint8).numpy()))
    with pytest.raises(UserError, match="labels outside"):
        load_kmnist(tmp_path, train=False, download=False)
