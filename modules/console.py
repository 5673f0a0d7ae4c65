"""The command line that train.py and predict.py share: option types, the
help format, the progress bar, and ``run_main``, which turns every error a
user can cause (a ``UserError``) into one line on stderr and a non-zero exit.
"""

import argparse
import functools
import math
import os
import signal
import sys

from tqdm import tqdm


INTERRUPTED = "interrupted; no output file was changed"


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


def one_line(error):
    """An exception as one short line, for a message that quotes a library."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def number(kind, allowed, what):
    """An argparse type: a ``kind`` (int or float) for which ``allowed`` holds."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


positive_int = number(int, lambda v: v >= 1, "at least 1")
seed_value = number(int, lambda v: 0 <= v < 2**32, f"from 0 to {2**32 - 1}")  # NumPy's range
port_number = number(int, lambda v: 0 <= v <= 65535, "from 0 to 65535")
positive_float = number(float, lambda v: 0 < v < math.inf, "a positive number")
fraction = number(float, lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")


def in_notebook():
    """True inside a Jupyter kernel."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return getattr(shell, "kernel", None) is not None


def show_inline(path):
    """In a notebook, show the picture at ``path`` below the cell (a script writes it only)."""
    if in_notebook():
        from IPython.display import Image, display

        display(Image(filename=path))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's, whose usage errors in a notebook are one line (a UserError)."""

    def error(self, message):
        if in_notebook():
            raise UserError(f"{self.prog}: {message}")
        super().error(message)


def entry_point(main):
    """``main(argv)`` for scripts and notebooks alike: in a Jupyter kernel an
    error the user can cause or Ctrl-C is one line on stderr, and nothing is
    returned to show below the cell; elsewhere ``main`` as it is (run_main)."""
    @functools.wraps(main)
    def call(argv=()):
        if not in_notebook():
            return main(argv)
        try:
            main(argv)
        except UserError as error:
            print(f"[ERROR] {error}", file=sys.stderr)
        except KeyboardInterrupt:
            print(f"[ERROR] {INTERRUPTED}", file=sys.stderr)
        except SystemExit:  # --help
            pass
    return call


def progress(iterable, description):
    """A per-batch progress bar, shown only on a terminal or in a notebook so
    logs stay clean."""
    if not (sys.stderr.isatty() or in_notebook()):
        return iterable
    return tqdm(iterable, desc=description, total=len(iterable), leave=False, unit="batch",
                dynamic_ncols=True)


def run_main(main, argv):
    """Run ``main(argv)`` and exit with its status, reporting user errors plainly."""
    try:
        try:
            status = main(argv)
        except SystemExit as done:  # argparse's --help and usage errors
            status = done.code
        sys.stdout.flush()  # now, while a closed pipe can still be handled below
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, as a program ended by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush succeeds
        status = 128 + getattr(signal, "SIGPIPE", 13)
    except UserError as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print(f"\n[ERROR] {INTERRUPTED}", file=sys.stderr)
        status = 130
    # the program ends: a late Ctrl-C would only interrupt the libraries' clean-up
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status or 0)
