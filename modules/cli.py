"""What train.py and predict.py share on the command line: option types,
the help format, the progress bar, one kind of error for everything a user
can cause and how it is reported, and output files written safely.

Scripts raise ``UserError`` with a message that says what went wrong and how
to fix it; ``run_main`` turns it into that one message on stderr and a
non-zero exit code instead of a traceback.  Output files are checked before
the long work starts and replaced atomically after it.
"""

import argparse
import contextlib
import os
import signal
import sys
import tempfile

from tqdm import tqdm


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _whole_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text):
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_value(text):
    """A seed NumPy accepts as well as PyTorch: 0 to 2**32 - 1."""
    value = _whole_number(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be from 0 to {2**32 - 1}, got {value}")
    return value


def port_number(text):
    """A TCP port: 0 (any free one) to 65535."""
    value = _whole_number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float(text):
    value = _number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text):
    """A number strictly between 0 and 1, such as a validation split."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def progress(iterable, description):
    """A per-batch progress bar, shown only on a terminal so logs stay clean."""
    if not sys.stderr.isatty():
        return iterable
    return tqdm(iterable, desc=description, total=len(iterable), leave=False, unit="batch",
                dynamic_ncols=True)


class UserError(Exception):
    """A problem the user can fix (bad option, missing file, no data...)."""


def run_main(main, argv=None):
    """Run ``main(argv)`` and exit with its status, reporting user errors plainly."""
    try:
        try:
            status = main(argv)
        except SystemExit as done:  # argparse's --help and usage errors
            status = done.code
        # output to a pipe is buffered: write it out now, while a closed
        # pipe can still be handled below
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`| head`, `grep -m`, quitting `less`): stop
        # quietly with the status of a program ended by SIGPIPE, as the shell
        # expects; outputs are written atomically, so none is left half-done
        _silence_stdout()
        status = 128 + getattr(signal, "SIGPIPE", 13)
    except UserError as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        # a second Ctrl-C would only interrupt the libraries' own clean-up at
        # exit, with a traceback: we are stopping already
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # outputs are written atomically, so an interrupted run leaves the
        # previous files as they were
        print("\n[ERROR] interrupted; earlier output files were left as they were", file=sys.stderr)
        status = 130
    sys.exit(status or 0)


def _silence_stdout():
    """Point stdout at the null device, so that the interpreter's own final
    flush of what is still buffered does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
