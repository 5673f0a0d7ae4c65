"""KMNIST on disk and in memory.

``load_kmnist`` wraps torchvision's ``KMNIST`` class (download, md5 check,
IDX parsing) and turns every way the files can be missing or broken into one
``UserError``.  It calls a file corrupt only where a check shows it (an md5,
an IDX header or size, the shapes and labels read); any other failure is
reported as it is.

``KMNISTTensors`` then holds a whole split as one uint8 tensor, already on
the training device, and hands the ``DataLoader`` whole batches at a time
(``__getitems__``) instead of converting 64 PIL images one by one.  On its
own that made an epoch 5% shorter here (docs/performance.md); it matters
more once the rest of the step is fast, and costs no code in the loop.
"""

import contextlib
import math
import os
import struct

import torch
from torch.utils.data import Dataset

from modules.cli import UserError

# torchvision is imported only where the files are read: classifying your
# own images or drawings never touches them, and importing it costs about
# 1.5 s and 200 MB (tests/test_data.py checks these match torchvision's)

# torchvision's names for the ten classes, in label order (romanised hiragana)
CLASS_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
# the characters themselves: お き す つ な は ま や れ を
HIRAGANA = ("\u304a", "\u304d", "\u3059", "\u3064", "\u306a",
            "\u306f", "\u307e", "\u3084", "\u308c", "\u3092")
IMAGE_SIZE = (28, 28)
# (file name, md5) of the four files, as torchvision checks them
KMNIST_FILES = (("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
                ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
                ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
                ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"))
KMNIST_SOURCE = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"


def raw_folder(data_dir):
    """Where torchvision keeps (and looks for) the four KMNIST files."""
    return os.path.join(data_dir, "KMNIST", "raw")


def split_files(train):
    """(file name, md5) of the two files of the training or the test split."""
    return KMNIST_FILES[:2] if train else KMNIST_FILES[2:]


def idx_problem(path):
    """What is wrong with an extracted IDX file of bytes, from its header and
    its size alone, or None: a check that needs no torchvision."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:3] != b"\0\0\x08" or magic[3] not in (1, 3):
            return "not an IDX file of bytes (its first four bytes say otherwise)"
        dims = f.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        return f"truncated: {size:,} bytes, too short even for its header"
    expected = 4 + len(dims) + math.prod(struct.unpack(f">{magic[3]}I", dims))
    if size != expected:
        return (f"truncated: {size:,} of the {expected:,} bytes its header announces"
                if size < expected else f"{size - expected:,} bytes longer than its header says")
    return None


def _paths(folder, name):
    """(the .gz archive, its extracted copy) of one KMNIST file in ``folder``."""
    archive = os.path.join(folder, name)
    return archive, os.path.splitext(archive)[0]


def _all_extracted(folder, files):
    return all(os.path.exists(_paths(folder, name)[1]) for (name, _) in files)


def _file_status(folder, name, md5):
    (archive, extracted) = _paths(folder, name)
    if os.path.exists(extracted):
        problem = idx_problem(extracted)
        return f"extracted copy present, but {problem}" if problem else "extracted copy present"
    if not os.path.exists(archive):
        return "missing"
    from torchvision.datasets.utils import check_integrity

    return "present, md5 ok" if check_integrity(archive, md5) else "present, but md5 does NOT match"


def data_help(data_dir, train):
    """The how-to-fix part of every data error message: what is needed, what is there."""
    folder = raw_folder(data_dir)
    split = "training" if train else "test"
    lines = [f"The KMNIST {split} set is these two files in {folder}/ "
             "(the .gz downloads, or their extracted copies without .gz):"]
    lines += [f"    {name}  md5 {md5}  [{_file_status(folder, name, md5)}]"
              for name, md5 in split_files(train)]
    lines.append(f"They come from {KMNIST_SOURCE} ; copy them there, or point "
                 "--data-dir at a folder that holds KMNIST/raw/ with them.")
    return "\n".join(lines)


def _present(folder, name):
    return any(os.path.exists(path) for path in _paths(folder, name))


def _extract_local_archives(folder, files):
    """Extract .gz files that are present and md5-correct but not yet extracted.

    torchvision only does this as part of a download; with --no-download we do
    it ourselves, so a copied set of .gz files works offline too.
    """
    from torchvision.datasets.utils import check_integrity, extract_archive

    for name, md5 in files:
        (archive, extracted) = _paths(folder, name)
        if not os.path.exists(extracted) and check_integrity(archive, md5):
            extract_archive(archive, folder)


def _broken_file(folder, files, download):
    """(file, what a check found wrong with it) for the first broken file, or None.

    Only what a check shows counts: an extracted file whose IDX header or size
    is wrong, or (where nothing will download it again) a .gz whose md5 does
    not match.
    """
    for (name, md5) in files:
        (archive, extracted) = _paths(folder, name)
        if os.path.exists(extracted):
            problem = idx_problem(extracted)
            if problem:
                return extracted, problem
        elif os.path.exists(archive) and not download:
            from torchvision.datasets.utils import check_integrity

            if not check_integrity(archive, md5):
                return archive, f"its md5 is not {md5}"
    return None


def _torchvision_kmnist(train):
    """torchvision's KMNIST, asking only for the two files of the split it reads.

    torchvision checks for and downloads the files its public ``resources``
    list names, all four by default, so it would not read the test set
    without the training files; here the list names the split's two.
    """
    from torchvision import datasets

    class KMNIST(datasets.KMNIST):  # the same name: torchvision builds its folders from it
        resources = list(split_files(train))

    return KMNIST


def _remove_empty_folders(folders):
    """Remove those of ``folders`` (each inside the one before) that are empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def load_kmnist(data_dir, train, download=True):
    """Return torchvision's KMNIST train or test split, checked for sanity.

    With ``download`` torchvision fetches and md5-checks whatever is missing;
    files already there are used as they are, without any network.  Only the
    split's own two files are needed.
    """
    split = "training" if train else "test"
    folder = raw_folder(data_dir)
    files = split_files(train)
    missing = [name for (name, _) in files if not _present(folder, name)]
    if missing and not download:
        raise UserError(f"the KMNIST {split} set was not found and --no-download is set\n"
                        f"{data_help(data_dir, train)}")
    if not download and os.path.isdir(folder):
        _extract_local_archives(folder, files)
    broken = _broken_file(folder, files, download)
    if broken:
        raise UserError(f"{broken[0]} is corrupt ({broken[1]}); delete it and download or "
                        f"copy it again\n{data_help(data_dir, train)}")

    downloading = download and not _all_extracted(folder, files)
    created = [path for path in (data_dir, os.path.dirname(folder), folder)
               if not os.path.exists(path)]
    try:
        dataset = _torchvision_kmnist(train)(root=data_dir, train=train, download=download)
    except Exception as error:  # noqa: BLE001 - reported in one line below, as it is
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        if downloading:
            _remove_empty_folders(created)  # a failed download leaves no empty folders
            what = f"could not download KMNIST ({reason})"
        else:
            broken = _broken_file(folder, files, download)
            what = (f"{broken[0]} is corrupt ({broken[1]}); delete it and download or copy "
                    "it again" if broken else
                    f"torchvision could not read the KMNIST {split} files in {folder} "
                    f"({type(error).__name__}: {reason}); they pass this project's checks "
                    "(IDX header and size), so the files themselves may well be fine")
        raise UserError(f"{what}\n{data_help(data_dir, train)}") from None

    images, labels = dataset.data, dataset.targets
    problem = None
    if images.ndim != 3 or tuple(images.shape[1:]) != IMAGE_SIZE:
        problem = f"images have shape {tuple(images.shape)}, expected N x 28 x 28"
    elif len(images) == 0 or len(images) != len(labels):
        problem = f"{len(images)} images but {len(labels)} labels"
    elif labels.min() < 0 or labels.max() >= len(CLASS_NAMES):
        problem = f"labels outside 0..{len(CLASS_NAMES) - 1}"
    if problem:
        raise UserError(f"the KMNIST {split} files in {folder} are corrupt ({problem}); "
                        f"delete them and download or copy them again\n"
                        f"{data_help(data_dir, train)}")
    return dataset


class KMNISTTensors(Dataset):
    """A KMNIST split held as tensors that serves whole batches.

    Indexing one item gives what torchvision's ``KMNIST`` with ``ToTensor()``
    gives (a 1x28x28 float image in [0, 1] and its label); ``__getitems__``
    does the same for a list of indices in one tensor operation, which is
    what ``DataLoader`` calls when it is there.
    """

    def __init__(self, kmnist, device="cpu"):
        # one uint8 copy on the device (47 MB for the training set): nothing
        # is copied from the host per batch, and scaling happens per batch
        self.images = kmnist.data.to(device)
        self.targets = kmnist.targets.to(device)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def __getitems__(self, indices):
        index = torch.as_tensor(indices, dtype=torch.long).to(self.images.device, non_blocking=True)
        images = self.images[index].unsqueeze(1).float().div_(255)
        return images, self.targets[index]


def whole_batch(batch):
    """collate_fn for KMNISTTensors: ``__getitems__`` already built the batch."""
    return batch
