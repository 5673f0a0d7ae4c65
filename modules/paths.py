"""Output files: checked before the long work starts, replaced atomically after."""

import contextlib
import os
import tempfile

from modules.errors import UserError


def check_writable(path, option):
    """Fail early (before training) if ``path`` cannot be written later."""
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"cannot create the folder for {option} {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {option} {path}: {existing} is not writable")


def _current_umask():
    """The process's umask; reading it means setting it, so put it straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _ordinary_mode(path):
    """The permission bits open(path, "w") would leave ``path`` with."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    Readers of ``path`` see either the old complete file or the new complete
    file, never a half-written one, and a failure leaves the old one alone.
    The finished file gets the mode an ordinary write would give it: the
    mode of the file it replaces, else 0666 less the umask (mkstemp's 0600
    would leave a model that a teammate or a server cannot read).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]  # keeps e.g. .png, which matplotlib reads
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp_path
        os.chmod(tmp_path, _ordinary_mode(path))
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
