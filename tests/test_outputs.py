"""Output files: checked before the work, written under temporary names and
moved into place together; an error or Ctrl-C at any step leaves the earlier
set whole."""

import contextlib
import json
import os
import signal
import stat

import pytest

import train
from modules.console import UserError
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


def test_a_move_that_fails_puts_back_the_ones_already_moved(tmp_path, monkeypatch):
    """The second of six files cannot be moved into place (a full disk, a file
    system that refuses): the first, already moved, is put back, and all six
    are the earlier set again, with no temporary file left."""
    import modules.outputs

    names = ["model.pth", "plot.png", "confusion_matrix.png", "mistakes.png", "filters.png",
             "metrics.json"]
    for name in names[:-1]:  # (the earlier run had no metrics.json)
        (tmp_path / name).write_bytes(b"old " + name.encode())
    real_replace = os.replace
    moves = []

    def replace(source, target):
        if os.path.basename(str(source)).startswith(".tmp-") and not str(source).endswith(".old"):
            moves.append(target)
            if len(moves) == 2:
                raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(modules.outputs.os, "replace", replace)
    with pytest.raises(UserError) as failed, OutputSet() as outputs:
        for name in names:
            write(outputs, tmp_path / name, b"new " + name.encode())
        outputs.commit()
    assert str(failed.value) == (f"could not move {tmp_path / 'plot.png'} into place (No space "
                                 "left on device); the earlier output files were put back as "
                                 "they were")
    assert len(moves) == 2 and sorted(os.listdir(tmp_path)) == sorted(names[:-1])
    assert all((tmp_path / name).read_bytes() == b"old " + name.encode() for name in names[:-1])


def train_in_place_of(trained, folder, data):
    """A copy of the trained run's outputs in ``folder``, then train.py run
    over them (seed 7, one epoch) in this process; returns (the file names,
    the copied files' bytes).  What it raised goes to the caller."""
    out, _ = trained
    names = sorted(os.listdir(out))
    before = {name: (out / name).read_bytes() for name in names}
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(before[name])
    return names, before, ["--data-dir", str(data), "--no-download", "--epochs", "1",
                           "--device", "cpu", "--seed", "7", "-m", str(folder / "model.pth"),
                           "-p", str(folder / "plot.png")]


def test_ctrl_c_at_each_step_of_saving_leaves_one_set(trained, small_kmnist, tmp_path,
                                                      monkeypatch, capsys):
    """train.py interrupted while it writes each of its outputs in turn: the
    earlier run's files all stay as they were, and no temporary file is left."""
    (real_path, real_commit) = (OutputSet.path, OutputSet.commit)
    for step in range(len(os.listdir(trained[0])) + 1):
        folder = tmp_path / str(step)
        (names, before, argv) = train_in_place_of(trained, folder, small_kmnist)

        def path(self, target, step=step):  # Ctrl-C as the (step + 1)-th file is begun
            if len(self.staged) == step:
                raise KeyboardInterrupt
            return real_path(self, target)

        def commit(self):  # the last step: Ctrl-C once all are written, before the move
            raise KeyboardInterrupt

        monkeypatch.setattr(OutputSet, "path", path)
        monkeypatch.setattr(OutputSet, "commit", commit if step == len(names) else real_commit)
        with pytest.raises(KeyboardInterrupt):
            train.main(argv)
        assert sorted(os.listdir(folder)) == names  # no temporary file left
        assert all((folder / name).read_bytes() == before[name] for name in names), step
        assert "[INFO] saved" not in capsys.readouterr().out  # nothing claims a file was saved


def test_ctrl_c_while_the_files_are_moved_into_place_waits_for_the_whole_set(
        trained, small_kmnist, tmp_path, monkeypatch, capsys):
    import modules.outputs

    (names, before, argv) = train_in_place_of(trained, tmp_path, small_kmnist)
    inodes = {name: os.stat(tmp_path / name).st_ino for name in names}
    real_replace = os.replace

    def replace(*args):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as each file moves
        real_replace(*args)

    monkeypatch.setattr(modules.outputs.os, "replace", replace)
    assert train.main(argv) == 0
    assert sorted(os.listdir(tmp_path)) == names
    assert all(os.stat(tmp_path / name).st_ino != inodes[name] for name in names)  # all new
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["options"]["seed"] == 7
    out = capsys.readouterr().out
    assert out.endswith(f"[INFO] test accuracy: {metrics['test_accuracy']:.4f}\n")
    assert "[INFO] saved the model to " in out
