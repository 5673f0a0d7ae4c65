"""The benchmarks' one way to run a program: as a child process, as a user
would start it, timed from start to exit, its output kept in a log file and
its peak resident memory as the kernel counted it for that process."""

import os
import subprocess
import tempfile
import time
from typing import NamedTuple


class Run(NamedTuple):
    stdout: str
    stderr: str
    wall: float  # seconds
    peak_mb: float  # the child's peak resident memory
    returncode: int


def timed_run(command, log, cwd=None, env=None):
    """Run ``command`` (a list) in ``cwd``; its stdout and stderr also go to ``log``."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=cwd, env=env)
        (_, status, usage) = os.wait4(child.pid, 0)  # this child's own figures
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        (stdout, stderr) = (out.read(), err.read())
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    with open(log, "w") as f:
        f.write(stdout + stderr)
    return Run(stdout, stderr, wall, usage.ru_maxrss / 1024, child.returncode)  # kB -> MB
