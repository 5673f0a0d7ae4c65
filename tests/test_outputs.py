"""Output files: checked before the work, written under temporary names and
moved into place together; an error or Ctrl-C at any step leaves the earlier
set whole."""

import contextlib
import os
import stat

import pytest

from conftest import headless_env, run_script
from modules.outputs import OutputSet


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def write(outputs, path, data):
    with open(outputs.path(path), "wb") as f:
        f.write(data)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_file_gets_0666_less_the_umask(tmp_path, mask, expected):
    path = tmp_path / "model.pth"
    with umask(mask), OutputSet() as outputs:
        write(outputs, path, b"weights")
        outputs.commit()
    assert mode(path) == expected
    assert path.read_bytes() == b"weights" and os.listdir(tmp_path) == ["model.pth"]


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)  # the user made it private: a new run keeps it so
    with umask(0o022), OutputSet() as outputs:
        write(outputs, path, b"new")
        outputs.commit()
    assert mode(path) == 0o600 and path.read_bytes() == b"new"


def test_nothing_changes_until_the_commit_and_a_failure_leaves_no_temporary(tmp_path):
    (a, b) = (tmp_path / "a.png", tmp_path / "b.json")
    a.write_bytes(b"old a")
    with pytest.raises(KeyboardInterrupt), OutputSet() as outputs:
        write(outputs, a, b"new a")
        write(outputs, b, b"new b")
        assert a.read_bytes() == b"old a" and not b.exists()
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["a.png"] and a.read_bytes() == b"old a"


def train_in_place_of(trained, folder, kmnist_dir, patch):
    """A copy of the trained run's outputs in ``folder``, then train.py run
    over them (seed 7, one epoch) with ``patch`` (Python code) applied first;
    returns (its result, the file names, the copied files' bytes)."""
    out, _ = trained
    names = sorted(os.listdir(out))
    before = {name: (out / name).read_bytes() for name in names}
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(before[name])
    code = (f"import os, signal, sys, modules.outputs as o, train\n{patch}\n"
            "from modules.console import run_main\nrun_main(train.main, sys.argv[1:])\n")
    result = run_script("-c", code, "--data-dir", kmnist_dir, "--no-download", "--epochs", 1,
                        "--device", "cpu", "--seed", 7, "-m", folder / "model.pth",
                        "-p", folder / "plot.png", env=headless_env())
    return result, names, before


def test_ctrl_c_at_each_step_of_saving_leaves_one_set(trained, kmnist_dir, tmp_path):
    """train.py interrupted while it writes each of its outputs in turn: the
    earlier run's files all stay as they were, and no temporary file is left."""
    for step in range(len(os.listdir(trained[0]))):
        folder = tmp_path / str(step)
        # the interrupt arrives when the (step + 1)-th output file is begun
        (result, names, before) = train_in_place_of(trained, folder, kmnist_dir, (
            "real = o.OutputSet.path\n"
            "def path(self, target):\n"
            f"    if len(self.staged) == {step}: raise KeyboardInterrupt\n"
            "    return real(self, target)\n"
            "o.OutputSet.path = path"))
        assert result.returncode == 130 and "interrupted" in result.stderr
        assert sorted(os.listdir(folder)) == names  # no temporary file left
        assert all((folder / name).read_bytes() == before[name] for name in names), step


def test_ctrl_c_while_the_files_are_moved_into_place_waits_for_the_whole_set(
        trained, kmnist_dir, tmp_path):
    (result, names, before) = train_in_place_of(trained, tmp_path / "run", kmnist_dir, (
        "real = os.replace\n"
        "def replace(*args):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"  # Ctrl-C as the first file moves
        "    real(*args)\n"
        "o.os.replace = replace"))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "run")) == names
    assert all((tmp_path / "run" / name).read_bytes() != before[name] for name in names)
