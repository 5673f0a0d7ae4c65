"""The command line that train.py and predict.py share: option types, the
help format, the progress bar, and ``run_main``, which turns every error a
user can cause (a ``UserError``) into one line on stderr and a non-zero exit.
"""

import argparse
import math
import os
import signal
import sys

from tqdm import tqdm


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


def progress(iterable, description):
    """A per-batch progress bar, shown only on a terminal so logs stay clean."""
    if not sys.stderr.isatty():
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
        print("\n[ERROR] interrupted; earlier output files were left as they were",
              file=sys.stderr)
        status = 130
    # the program ends: a late Ctrl-C would only interrupt the libraries' clean-up
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status or 0)
