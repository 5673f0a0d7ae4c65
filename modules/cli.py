"""Command-line helpers shared by train.py and predict.py: option types, the
help format and the progress bar."""

import argparse
import sys

try:  # a progress bar is a nicety, not a requirement
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


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
    if tqdm is None or not sys.stderr.isatty():
        return iterable
    return tqdm(iterable, desc=description, total=len(iterable), leave=False, unit="batch",
                dynamic_ncols=True)
