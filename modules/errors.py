"""One kind of error for everything a user can cause, and how scripts report it.

Scripts raise ``UserError`` with a message that says what went wrong and how
to fix it; ``run_main`` turns it into that one message on stderr and a
non-zero exit code instead of a traceback.
"""

import sys


class UserError(Exception):
    """A problem the user can fix (bad option, missing file, no data...)."""

    exit_code = 1


def run_main(main, argv=None):
    """Run ``main(argv)`` and exit with its status, reporting user errors plainly."""
    try:
        status = main(argv)
    except UserError as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        status = error.exit_code
    except KeyboardInterrupt:
        # outputs are written atomically, so an interrupted run leaves the
        # previous files as they were
        print("\n[ERROR] interrupted; earlier output files were left as they were", file=sys.stderr)
        status = 130
    sys.exit(status or 0)
