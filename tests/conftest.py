import contextlib
import os
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kmnist_files import write_kmnist  # noqa: E402


def run_script(script, *args, env=None, cwd=None, timeout=600):
    """Run train.py or predict.py (or ``-c CODE``) as a user would; returns the
    CompletedProcess."""
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    script = script if script.startswith("-") else os.path.join(ROOT, script)
    return subprocess.run([sys.executable, script, *map(str, args)],
                          capture_output=True, text=True, env=environment, cwd=cwd or ROOT,
                          timeout=timeout)


def headless_env():
    """The environment of a machine with no display at all."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="session")
def kmnist_dir(tmp_path_factory):
    """A small generated KMNIST (2,000 training, 200 test images) in a data dir."""
    root = tmp_path_factory.mktemp("kmnist")
    write_kmnist(root, n_train=2000, n_test=200)
    return root


@pytest.fixture(scope="session")
def trained(kmnist_dir, tmp_path_factory):
    """train.py run once end to end (2 epochs on CPU) on the generated data."""
    out = tmp_path_factory.mktemp("trained")
    result = run_script("train.py", "--data-dir", kmnist_dir, "--epochs", 2, "--device", "cpu",
                        "--no-download", "-m", out / "model.pth", "-p", out / "plot.png",
                        env=headless_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


@pytest.fixture(scope="session")
def framed_model_file(tmp_path_factory):
    """A model trained (2 epochs on CPU) on generated characters framed like
    KMNIST's, so that it reads the same characters drawn on a canvas, which
    --draw frames that way too (the plain generated data is not framed)."""
    root = tmp_path_factory.mktemp("framed")
    write_kmnist(root, n_train=2000, n_test=200, frame=True)
    result = run_script("train.py", "--data-dir", root, "--epochs", 2, "--device", "cpu",
                        "--no-download", "-m", root / "model.pth", "-p", root / "plot.png",
                        env=headless_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "model.pth"


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
