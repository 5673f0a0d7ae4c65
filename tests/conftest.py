import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kmnist_files import write_kmnist  # noqa: E402


def run_script(script, *args, env=None, cwd=None):
    """Run train.py or predict.py as a user would; returns the CompletedProcess."""
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)],
                          capture_output=True, text=True, env=environment, cwd=cwd or ROOT,
                          timeout=600)


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
