"""KMNIST on disk and in memory.

``load_kmnist`` makes sure the four files are in DATA_DIR/KMNIST/raw/, each
fetched from the first of SOURCES that serves the right bytes (md5-checked),
and reads a split with torchvision's own ``KMNIST`` class.  ``KMNISTTensors``
holds a split as one tensor on the training device, and ``batches`` serves it
to a DataLoader a whole batch per indexing operation, not image by image.
"""

import contextlib
from importlib import metadata
import math
import os
import struct

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from modules.console import UserError, one_line

# torchvision's names for the ten classes, in label order, and the characters
CLASS_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
HIRAGANA = ("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を")
# (file name, md5) of the four files, as torchvision checks them
KMNIST_FILES = (("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
                ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
                ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
                ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"))
# the authors' server, then the same four files in a copy on Hugging Face,
# pinned to the revision that still has them (the md5 decides either way)
SOURCES = ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
           "https://huggingface.co/datasets/tanganke/kmnist/resolve/"
           "c069cb84fc8b936f73c01c933a54fc57345a9c87/raw/")


def _download(folder, name, md5, sources):
    """Fetch ``name`` from the first source that serves bytes with its md5."""
    from torchvision.datasets.utils import download_url

    errors = []
    for source in sources:
        try:
            return download_url(source + name, folder, name, md5)
        except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
            errors.append(f"{source} ({one_line(error)})")
            with contextlib.suppress(OSError):  # wrong or partial bytes are not kept
                os.remove(os.path.join(folder, name))
    raise UserError(f"could not download {name}; tried {'; '.join(errors)}. Try again later, "
                    f"or copy the four KMNIST .gz files into {folder}")


def _fetch(folder, download, sources):
    """Make sure the four files are extracted in ``folder``."""
    from torchvision.datasets.utils import check_integrity, extract_archive

    for (name, md5) in KMNIST_FILES:
        archive = os.path.join(folder, name)
        if os.path.exists(archive[:-len(".gz")]):
            continue
        if download:
            _download(folder, name, md5, sources)
        elif not os.path.exists(archive):
            raise UserError(f"{archive} (or its extracted copy) is missing and --no-download is "
                            f"set; leave that out, or copy the four KMNIST files from "
                            f"{sources[0]} into {folder}")
        elif not check_integrity(archive, md5):
            raise UserError(f"{archive} is corrupt (its md5 is not {md5}); delete it and run "
                            "without --no-download, or copy it again")
        extract_archive(archive, folder)


def _idx_problem(path):
    """Why ``path`` is not a whole IDX file of bytes, or None."""
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:3] != b"\0\0\x08":
            return "not an IDX file of bytes"
        sizes = f.read(4 * head[3])
    if len(sizes) < 4 * head[3]:
        return "it ends inside its header"
    expected = 4 + len(sizes) + math.prod(struct.unpack(f">{head[3]}I", sizes))
    size = os.path.getsize(path)
    return f"{size:,} bytes where its header says {expected:,}" if size != expected else None


def load_kmnist(data_dir, train, download=True, sources=SOURCES):
    """torchvision's KMNIST training or test split from ``data_dir``, the
    files downloaded first where missing (unless ``download`` is False)."""
    try:
        from torchvision import datasets  # only here: 1.5 s to import, not needed for --image
    except Exception as error:  # noqa: BLE001 - "operator torchvision::nms does not exist"...
        raise UserError(f"torchvision {metadata.version('torchvision')} cannot be used with "
                        f"torch {torch.__version__} ({one_line(error)}); install a matching "
                        "pair: pip install --force-reinstall torch torchvision (see README.md, "
                        "Quick start)") from None

    folder = os.path.join(data_dir, "KMNIST", "raw")
    created = [path for path in (data_dir, os.path.dirname(folder), folder)
               if not os.path.exists(path)]
    try:
        _fetch(folder, download, sources)
    except UserError:
        for path in reversed(created):  # a failed download leaves no empty folders
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    for (name, _) in KMNIST_FILES[:2] if train else KMNIST_FILES[2:]:
        path = os.path.join(folder, name[:-len(".gz")])
        problem = _idx_problem(path)
        if problem:
            raise UserError(f"{path} is broken ({problem}); delete it and run again to "
                            "download it afresh")
    try:
        dataset = datasets.KMNIST(root=data_dir, train=train)
    except Exception as error:  # noqa: BLE001 - the files are sound: torchvision failed
        raise UserError(f"torchvision could not read the KMNIST files in {folder}, which are "
                        f"sound ({one_line(error)}); reinstall torch and torchvision as a "
                        "matching pair (README.md, Quick start)") from None
    (images, labels) = (dataset.data, dataset.targets)
    if (images.shape[1:] != (28, 28) or len(images) != len(labels) or len(labels) == 0
            or not 0 <= labels.min() <= labels.max() < len(CLASS_NAMES)):
        raise UserError(f"the KMNIST files in {folder} do not hold 28x28 images with one label "
                        f"0-9 each; delete them and run again to download them afresh")
    return dataset


class KMNISTTensors(Dataset):
    """A KMNIST split held as tensors on ``device``.  Item ``i`` is what
    torchvision's KMNIST with ToTensor() gives (a 1x28x28 float image in
    [0, 1] and its label); a list of indices gives a whole batch at once."""

    def __init__(self, kmnist, device="cpu"):
        # one uint8 copy (47 MB for the training set): nothing is copied per batch
        self.images = kmnist.data.to(device)
        self.targets = kmnist.targets.to(device)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        index = torch.as_tensor(index, dtype=torch.long).to(self.images.device, non_blocking=True)
        return self.images[index].unsqueeze(-3).float().div_(255), self.targets[index]


def batches(dataset, batch_size, shuffle=False, generator=None):
    """A DataLoader whose sampler hands ``dataset`` a list of indices per batch."""
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False),
                      batch_size=None, generator=generator)
