import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import (ROOT, headless_env, needs_virtual_display, run_script, started,
                      virtual_display, wait_for_window)
from kmnist_files import write_kmnist
from modules import display


def test_headless_predict_prints_saves_the_grid_and_exits_0(trained, kmnist_dir, tmp_path, run):
    out, _ = trained
    grid = tmp_path / "predictions.png"
    result = run("predict.py", "-m", out / "model.pth", "--data-dir", kmnist_dir,
                 "--no-download", "-o", grid)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines()
             if line.startswith("[INFO] ground truth label:")]
    assert len(lines) == 10
    right = sum(line.split("ground truth label: ")[1].split(",")[0]
                == line.split("predicted label: ")[1] for line in lines)
    assert right >= 5  # the model is far better than chance on its own kind of data
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no display" in result.stdout and "neither DISPLAY nor WAYLAND_DISPLAY" in result.stdout
    assert "Traceback" not in result.stderr
    # which model, and the score as the last line
    assert re.search(rf"^\[INFO\] {re.escape(str(out / 'model.pth'))}: LeNet trained with the "
                     r"tutorial recipe \(2 epochs, seed 42\), test accuracy \d+\.\d\d%$",
                     result.stdout, re.MULTILINE)
    assert result.stdout.splitlines()[-1] == \
        f"[INFO] {right} of 10 test images classified right ({right / 10:.1%})"


def test_same_seed_picks_the_same_images_and_num_is_honoured(trained, kmnist_dir, tmp_path, run):
    out, _ = trained
    runs = [run("predict.py", "-m", out / "model.pth", "--data-dir", kmnist_dir,
                "--no-download", "--no-display", "--num", 4, "--seed", seed,
                "-o", tmp_path / f"{seed}.png")
            for seed in (3, 3)]
    assert runs[0].returncode == 0 and runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.count("[INFO] ground truth label:") == 4
    assert "no display" not in runs[0].stdout


def test_num_beyond_the_test_set_is_refused(trained, kmnist_dir, tmp_path, run):
    out, _ = trained
    result = run("predict.py", "-m", out / "model.pth", "--data-dir", kmnist_dir,
                 "--no-download", "--no-display", "--num", 201, "-o", tmp_path / "p.png")
    assert result.returncode == 1
    assert result.stderr == ("[ERROR] --num 201 is more than the 200 images of the KMNIST "
                             "test set; ask for at most 200\n")
    assert not (tmp_path / "p.png").exists()


def test_many_images_are_all_printed_but_the_picture_shows_the_first_50(trained, kmnist_dir,
                                                                        tmp_path, run):
    from PIL import Image

    out, _ = trained
    grid = tmp_path / "grid.png"
    result = run("predict.py", "-m", out / "model.pth", "--data-dir", kmnist_dir,
                 "--no-download", "--num", 200, "-o", grid)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[INFO] ground truth label: ") == 200
    assert f"[INFO] saved the first 50 of 200 annotated images to {grid}\n" in result.stdout
    # 10 rows of 5 panels (2.3 x 2.6 inches each, a 0.4 inch title, 100 dpi),
    # where all 200 would make 40 rows
    with Image.open(grid) as picture:
        assert picture.size == (1150, 2640)


def test_ctrl_c_stops_a_long_prediction(trained, tmp_path):
    """10,000 test images take seconds; SIGINT after the first lines ends the run
    at once with the usual message and exit code 130."""
    out, _ = trained
    write_kmnist(tmp_path, n_train=10, n_test=10_000)
    with started([os.path.join(ROOT, "predict.py"), "-m", out / "model.pth", "--data-dir",
                  tmp_path, "--no-download", "--no-display", "--num", 10_000,
                  "-o", tmp_path / "p.png"], headless_env()) as predict:
        for _ in range(20):  # wait until it is classifying
            line = predict.stdout.readline()
            assert line.startswith("[INFO] "), (line, predict.stderr.read())
        predict.send_signal(signal.SIGINT)
        (stdout, stderr) = predict.communicate(timeout=30)
    assert predict.returncode == 130, stderr
    assert stderr.endswith("[ERROR] interrupted; no output file was changed\n")
    assert "Traceback" not in stderr
    assert stdout.count("[INFO] ground truth label: ") < 9_000
    assert not (tmp_path / "p.png").exists()


def test_missing_model_file(kmnist_dir, tmp_path):
    """A user's mistake in a real process: exit status 1, one line, no traceback."""
    result = run_script("predict.py", "-m", tmp_path / "none.pth", "--data-dir", kmnist_dir,
                        "--no-display", "-o", tmp_path / "p.png", env=headless_env())
    assert result.returncode == 1
    assert "[ERROR] model file not found" in result.stderr and "Traceback" not in result.stderr


def test_missing_model_file_says_where_it_looked_when_run_from_another_folder(tmp_path, run,
                                                                              monkeypatch):
    # `python proj/predict.py`: the default output/model.pth is looked for here
    monkeypatch.chdir(tmp_path)
    result = run("predict.py", "--no-display")
    assert result.returncode == 1
    assert f"[ERROR] model file not found: {tmp_path / 'output' / 'model.pth'};" in result.stderr


def whole_pickled_model(tmp_path):
    import torch
    from modules.lenet import LeNet

    torch.save(LeNet(1, 10), tmp_path / "model.pth")  # the tutorial's torch.save(model, ...)
    return tmp_path / "model.pth"


def notes(tmp_path):
    (tmp_path / "notes.txt").write_text("e\n" * 101)  # (torch.load once said KeyError: 101)
    return tmp_path / "notes.txt"


@pytest.mark.parametrize("model", [lambda tmp: os.path.join(ROOT, "README.md"), notes,
                                   lambda tmp: os.path.join(ROOT, "docs", "plot.png"),
                                   whole_pickled_model])
def test_a_file_that_is_not_a_model_is_one_line_with_the_fix(kmnist_dir, tmp_path, model, run):
    model = model(tmp_path)
    result = run("predict.py", "-m", model, "--data-dir", kmnist_dir, "--no-display",
                 "-o", tmp_path / "p.png")
    assert result.returncode == 1
    assert result.stderr.startswith(f"[ERROR] {model} is not a model file that train.py wrote")
    assert "python train.py" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "p.png").exists()


def test_missing_test_data(trained, tmp_path, run):
    out, _ = trained
    result = run("predict.py", "-m", out / "model.pth", "--data-dir", tmp_path,
                 "--no-download", "--no-display", "-o", tmp_path / "p.png")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1  # (tests/test_data.py)
    assert not (tmp_path / "p.png").exists()


def test_a_bad_option_value_as_a_user_meets_it():
    """In a real process: argparse's usage error, exit status 2."""
    result = run_script("predict.py", "--num", "0")
    assert result.returncode == 2 and "argument --num: must be at least 1" in result.stderr
    assert result.stderr.startswith("usage: predict.py ") and "Traceback" not in result.stderr


def test_bad_option_values(run):
    result = run("predict.py", "--seed", "x")
    assert result.returncode == 2 and "argument --seed: 'x' is not a whole number" in result.stderr


def test_display_checks(monkeypatch):
    monkeypatch.setattr(display, "opencv_gui_backend", lambda: None)
    assert "no GUI support" in display.display_problem()

    monkeypatch.setattr(display, "opencv_gui_backend", lambda: "QT5")
    monkeypatch.setattr(display.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "neither DISPLAY nor WAYLAND_DISPLAY" in display.display_problem()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert "needs X11" in display.display_problem()
    # a display number nobody serves: the check must say so rather than let Qt abort
    monkeypatch.setenv("DISPLAY", ":987")
    assert "cannot connect to the X display ':987'" in display.display_problem()
    monkeypatch.setenv("DISPLAY", "not a display")
    assert "cannot connect" in display.display_problem()
    monkeypatch.setattr(display.sys, "platform", "darwin")
    assert display.display_problem() is None


def test_annotated_picture_is_the_tutorials():
    import numpy as np

    picture = display.annotate(np.zeros((28, 28), np.float32), "ki", "#00ff00")
    assert picture.shape == (128, 128, 3)
    assert picture[..., 1].max() == 255 and picture[..., 2].max() == 0  # green text only


@needs_virtual_display
def test_window_opens_on_a_virtual_display_and_keys_step_through(trained, kmnist_dir,
                                                                   tmp_path):
    out, _ = trained
    with virtual_display(100 + os.getpid() % 400) as env:
        with started([os.path.join(ROOT, "predict.py"), "-m", out / "model.pth", "--data-dir",
                      kmnist_dir, "--no-download", "--num", 3, "-o", tmp_path / "grid.png"],
                     env) as predict:
            window = wait_for_window(predict, display.WINDOW, env)
            # one key shows the next image, q quits before the third
            for key in ("space", "q"):
                subprocess.run(["xdotool", "key", "--window", window, key], env=env,
                               check=True)
                time.sleep(0.5)
            stdout, stderr = predict.communicate(timeout=30)
    assert predict.returncode == 0, stderr
    assert "showing the images" in stdout and "no display" not in stdout
    assert (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("script, options", [
    ("predict.py", ["--no-display", "--no-download", "-o", "{tmp}/p.png", "-m", "{model}",
                    "--data-dir", "{data}"]),
    ("train.py", ["--help"]),
])
def test_a_reader_that_goes_away_ends_the_program_quietly(trained, kmnist_dir, tmp_path,
                                                          script, options):
    """`python predict.py | head -4`: the pipe closes before everything is written."""
    out, _ = trained
    argv = [o.format(tmp=tmp_path, model=out / "model.pth", data=kmnist_dir) for o in options]
    env = headless_env()
    env.pop("PYTHONUNBUFFERED", None)  # block-buffered, as in a real pipe
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, script), *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    process.stdout.close()  # the reader is gone before the first line arrives
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, as the shell reports it
    assert stderr == ""  # no traceback, no "Exception ignored"
