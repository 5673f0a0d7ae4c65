"""Output files written safely: checked before the long work starts, written
beside their targets under temporary names, and moved into place together at
the end, so an error or Ctrl-C leaves the earlier set whole, never a mix.
"""

import contextlib
import os
import signal
import tempfile
import threading

from modules.console import UserError


def check_writable(path, option):
    """Fail early (before training) if ``path`` cannot be written later."""
    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder; give a file name")
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"cannot create the folder for {option} {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {option} {path}: {existing} is not writable")


def ordinary_mode(path):
    """The permission bits open(path, "w") would leave: the replaced file's,
    else 0666 less the umask (mkstemp's 0600 would hide a model from a teammate)."""
    try:
        return os.stat(path).st_mode & 0o777
    except (OSError, TypeError):  # (None: a new file)
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


class OutputSet:
    """Files that appear together: ``path(target)`` gives a temporary name
    beside ``target`` to write to; ``commit()`` renames them all into place.
    Used as a context manager, it deletes the temporary files unless committed."""

    def __init__(self):
        self.staged = []  # (temporary path, target)

    def path(self, target):
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        # the suffix stays: matplotlib picks the format from it
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(target)[1],
                                   dir=folder)
        os.close(fd)
        self.staged.append((tmp, target))
        return tmp

    def commit(self):
        """Move every file into place, with Ctrl-C held off for these
        milliseconds.  If one cannot be moved (a full disk, permissions), those
        already moved are put back as they were, and a UserError says so."""
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        moved = []  # (target, the file it replaced, moved aside, or None)
        try:
            for (tmp, target) in self.staged:
                os.chmod(tmp, ordinary_mode(target))
                aside = tmp + ".old" if os.path.lexists(target) else None
                if aside:
                    os.replace(target, aside)
                moved.append((target, aside))
                os.replace(tmp, target)
        except OSError as error:
            for (done, aside) in reversed(moved):
                with contextlib.suppress(OSError):
                    os.replace(aside, done) if aside else os.remove(done)
            raise UserError(f"could not move {target} into place ({error.strerror or error}); "
                            "the earlier output files were put back as they were") from None
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        for (_, aside) in moved:
            if aside:
                os.remove(aside)
        self.staged = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for (tmp, _) in self.staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.staged = []
