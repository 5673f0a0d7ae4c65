import collections
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kmnist_files import class_strokes, write_kmnist  # noqa: E402


# Most tests call train.py's and predict.py's main() in this process (the
# ``run`` fixture).  A new process is started only where the process is the
# point: signals (Ctrl-C at work, SIGTERM at the drawing server),
# a closed pipe, the OpenCV window on a virtual display, a missing model and
# a bad option as a user meets them (exit status and one line on stderr),
# and what a fresh interpreter imports (test_own_images.py).


def run_script(script, *args, env=None, cwd=None, timeout=600):
    """Run train.py or predict.py (or ``-c CODE``) as a user would, in a new
    process; returns the CompletedProcess."""
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    script = script if script.startswith("-") else os.path.join(ROOT, script)
    return subprocess.run([sys.executable, script, *map(str, args)],
                          capture_output=True, text=True, env=environment, cwd=cwd or ROOT,
                          timeout=timeout)


Result = collections.namedtuple("Result", "returncode stdout stderr")


@pytest.fixture
def run(capsys, monkeypatch):
    """``run("predict.py", *args)``: the script's entry point called in this
    process as ``python predict.py ARGS`` runs it (run_main: one-line errors,
    exit statuses), on a machine with no display; returns a Result: exit
    status, stdout, stderr."""
    import importlib

    from modules.console import run_main

    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)

    def call(script, *args):
        main = importlib.import_module(script.removesuffix(".py")).main
        handler = signal.getsignal(signal.SIGINT)  # (run_main ignores a late Ctrl-C)
        try:
            with pytest.raises(SystemExit) as exited:
                run_main(main, [str(a) for a in args])
        finally:
            signal.signal(signal.SIGINT, handler)
        return Result(exited.value.code, *capsys.readouterr())

    return call


def headless_env():
    """The environment of a machine with no display at all."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="session")
def kmnist_dir(tmp_path_factory):
    """A small generated KMNIST (2,000 training, 200 test images) in a data dir,
    the characters framed as KMNIST's are (and as --image and --draw frame theirs)."""
    root = tmp_path_factory.mktemp("kmnist")
    write_kmnist(root, n_train=2000, n_test=200, frame=True)
    return root


@pytest.fixture(scope="session")
def small_kmnist(tmp_path_factory):
    """A data set small enough that a whole train.py epoch takes under a
    second (200 training, 50 test images), for tests of what a run does
    rather than what it learns."""
    root = tmp_path_factory.mktemp("small")
    write_kmnist(root, n_train=200, n_test=50, frame=True)
    return root


@pytest.fixture(scope="session")
def trained(kmnist_dir, tmp_path_factory):
    """train.py run once end to end (2 epochs on CPU) on the generated data, in
    this process: (its output folder, what it printed as .stdout and .stderr)."""
    import train

    out = tmp_path_factory.mktemp("trained")
    (stdout, stderr) = (io.StringIO(), io.StringIO())
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = train.main(["--data-dir", str(kmnist_dir), "--epochs", "2", "--device", "cpu",
                           "--no-download", "-m", str(out / "model.pth"),
                           "-p", str(out / "plot.png")])
    result = types.SimpleNamespace(returncode=code, stdout=stdout.getvalue(),
                                   stderr=stderr.getvalue())
    assert code == 0, result.stdout + result.stderr
    return out, result


@pytest.fixture(scope="session")
def model(trained):
    """The trained LeNet, loaded as predict.py loads it."""
    from modules.checkpoint import build_model, load_checkpoint

    path = trained[0] / "model.pth"
    return build_model(load_checkpoint(path), path)


def strokes_of_class(k):
    """Class ``k``'s three generated strokes as the page sends them: canvas
    pixels, eight points each, in the frame --draw gives a drawing (so the
    trained model reads them as class ``k``)."""
    from modules.canvas import CANVAS_SIZE

    strokes = [np.array([(c0 + (c1 - c0) * t, r0 + (r1 - r0) * t) for t in np.linspace(0, 1, 8)])
               for (r0, c0, r1, c1) in class_strokes(0)[k]]
    return [np.rint(stroke * CANVAS_SIZE / 28).astype(int).tolist() for stroke in strokes]


needs_virtual_display = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool")),
    reason="needs Xvfb and xdotool (Debian: apt install xvfb xdotool)")


@contextlib.contextmanager
def virtual_display(number, size="1024x768"):
    """An Xvfb X server on display ``number``; yields the environment to use it."""
    from modules.display import _x_server_reachable

    name = f":{number}"
    xvfb = subprocess.Popen(["Xvfb", name, "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _x_server_reachable(name):
            assert time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        env = headless_env()
        env["DISPLAY"] = name
        yield env
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


def wait_for_window(process, title, env, timeout=60):
    """The X window id of ``title`` once ``process`` has opened it."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no window {title!r} appeared"
        time.sleep(0.3)
        found = subprocess.run(["xdotool", "search", "--name", f"^{title}$"], env=env,
                               capture_output=True, text=True).stdout.split()
        if found:
            return found[0]


@contextlib.contextmanager
def started(args, env):
    """``python args...`` running in the background (killed if still running at the end)."""
    process = subprocess.Popen([sys.executable, "-u", *map(str, args)], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
