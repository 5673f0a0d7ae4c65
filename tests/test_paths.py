import contextlib
import os
import stat

import pytest

from modules.console import atomic_output


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_file_gets_0666_less_the_umask(tmp_path, mask, expected):
    path = tmp_path / "model.pth"
    with umask(mask), atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"weights")
    assert mode(path) == expected
    assert path.read_bytes() == b"weights" and os.listdir(tmp_path) == ["model.pth"]


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)  # the user made it private: a new run keeps it so
    with umask(0o022), atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"new")
    assert mode(path) == 0o600 and path.read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"good")
    with pytest.raises(OSError), atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["model.pth"]
