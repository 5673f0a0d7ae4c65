"""One kind of error for everything a user can cause, and how scripts report it.

Scripts raise ``UserError`` with a message that says what went wrong and how
to fix it; ``run_main`` turns it into that one message on stderr and a
non-zero exit code instead of a traceback.
"""

import os
import signal
import sys


class UserError(Exception):
    """A problem the user can fix (bad option, missing file, no data...)."""

    exit_code = 1


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
        status = error.exit_code
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
