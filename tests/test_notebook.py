"""train.py and predict.py in a Jupyter notebook, executed by a real kernel:
pictures inline, a progress bar, one readable line for an error, no `Out: 0`."""

import importlib.util

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("nbclient") and importlib.util.find_spec("ipykernel")),
    reason="needs nbclient and ipykernel (pip install -r requirements-dev.txt)")


def test_a_notebook_shows_the_pictures_a_progress_bar_and_one_line_errors(small_kmnist,
                                                                          tmp_path):
    import nbformat
    from nbclient import NotebookClient

    model = tmp_path / "model.pth"
    cells = [
        f"import os, sys\nos.chdir({str(tmp_path)!r})\nsys.path.insert(0, {ROOT!r})\n"
        "import train, predict",
        f"train.main(['--data-dir', {str(small_kmnist)!r}, '--epochs', '1', '--no-download', "
        f"'--device', 'cpu', '-m', {str(model)!r}])",
        f"predict.main(['-m', {str(model)!r}, '--data-dir', {str(small_kmnist)!r}, "
        "'--no-download', '--num', '3'])",
        "predict.main(['--num', '0'])",
        f"predict.main(['-m', {str(tmp_path / 'none.pth')!r}])",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    (_, trained, predicted, usage, missing) = [cell.outputs for cell in notebook.cells]

    def kinds(outputs):
        return [output.output_type for output in outputs]

    def text(outputs, name):
        return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == name)

    for outputs in (trained, predicted, usage, missing):
        assert "execute_result" not in kinds(outputs)  # no `Out: 0` below a cell
        assert "error" not in kinds(outputs)  # no traceback, no SystemExit
    # the plot after training, the predictions' grid, each a PNG below its cell
    for outputs in (trained, predicted):
        images = [o for o in outputs if o.output_type == "display_data"]
        assert len(images) == 1 and images[0].data["image/png"]
    assert "[INFO] test accuracy: " in text(trained, "stdout")
    assert "epoch 1/1" in text(trained, "stderr")  # the progress bar
    assert text(predicted, "stdout").count("[INFO] ground truth label:") == 3
    assert "no display" not in text(predicted, "stdout")  # the picture is shown inline
    # an error is one line, saying what is wrong, the script named as the user knows it
    assert text(usage, "stderr") == \
        "[ERROR] predict.py: argument --num: must be at least 1, got 0\n"
    assert text(missing, "stderr").startswith("[ERROR] model file not found: ")
    assert len(text(missing, "stderr").splitlines()) == 1
