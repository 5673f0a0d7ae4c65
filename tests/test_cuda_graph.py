"""--cuda-graph: what can be checked on a CPU, and the real recording on a CUDA GPU."""

import re
import subprocess
import sys

import pytest
import torch

import train
from conftest import ROOT
from modules.checkpoint import load_checkpoint
from modules.cli import run_main

EPOCH_LINES = re.compile(r"^(?:Train|Val) loss: .*$", re.MULTILINE)


def run_train(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        run_main(train.main, [str(a) for a in argv])
    (out, err) = capsys.readouterr()
    assert caught.value.code == 0, err
    return out


def test_graphed_training_trains_the_improved_recipe_like_the_plain_loop(
        kmnist_dir, tmp_path, capsys, monkeypatch):
    """The wiring around the recorded passes, on the CPU, where nothing can be
    recorded: a stand-in for PyTorch's recorder runs the same eager pass, so
    the equal numbers below hold by construction and prove nothing about a
    real graph (the CUDA tests below do that).  What this shows: which
    batches are replayed (every full training batch, never the last smaller
    one nor evaluation), that each goes through the one recorded input
    tensor, and that the weights are updated in place, where the recording
    saw them."""
    replays = []

    def stand_in(model, sample_args):
        (static,) = sample_args
        recorded_forward = model.forward
        weights = [p.data_ptr() for p in model.parameters()]

        def replay(x):
            # a replayed graph reads the weights where they were when recorded
            assert [p.data_ptr() for p in model.parameters()] == weights
            static.copy_(x)
            replays.append(x.shape[0])
            return recorded_forward(static)

        model.forward = replay
        return model

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", stand_in)
    monkeypatch.setattr(train, "graph_problem", lambda device: None)
    common = ["--recipe", "improved", "--epochs", 2, "--batch-size", 64, "--data-dir",
              kmnist_dir, "--no-download", "--device", "cpu", "-p", tmp_path / "p.png"]
    plain = run_train([*common, "-m", tmp_path / "plain" / "m.pth"], capsys)
    graphed = run_train([*common, "--cuda-graph", "-m", tmp_path / "graph" / "m.pth"], capsys)

    assert "[INFO] recorded the forward and backward pass as CUDA graphs" in graphed
    assert EPOCH_LINES.findall(plain) == EPOCH_LINES.findall(graphed)
    assert len(EPOCH_LINES.findall(plain)) == 4
    # 1,900 training images: 29 full batches of 64 per epoch, replayed; the
    # last batch of 44 and every evaluation ran the model as usual
    assert replays == [64] * 29 * 2
    weights = [load_checkpoint(tmp_path / run / "m.pth")["state_dict"]
               for run in ("plain", "graph")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_failed_recording_is_said_at_once_and_training_goes_on(kmnist_dir, tmp_path, capsys,
                                                                 monkeypatch):
    def fails(model, sample_args):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fails)
    monkeypatch.setattr(train, "graph_problem", lambda device: None)
    out = run_train(["--epochs", 1, "--cuda-graph", "--data-dir", kmnist_dir, "--no-download",
                     "--device", "cpu", "-m", tmp_path / "m.pth", "-p", tmp_path / "p.png"],
                    capsys)
    said = out.index("[INFO] the CUDA graph could not be recorded, so training runs without "
                     "it: operation not permitted when stream is capturing")
    assert said < out.index("[INFO] training the network...")
    assert (tmp_path / "m.pth").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_recorded_passes_train_like_the_plain_loop_on_cuda(kmnist_dir, tmp_path, capsys):
    """The real recording: the improved recipe with and without --cuda-graph
    (GPU kernels may add in another order, so the numbers agree closely, not
    bit for bit)."""
    common = ["--recipe", "improved", "--epochs", 2, "--batch-size", 64, "--data-dir",
              kmnist_dir, "--no-download", "--device", "cuda", "-p", tmp_path / "p.png"]
    run_train([*common, "-m", tmp_path / "plain" / "m.pth"], capsys)
    graphed = run_train([*common, "--cuda-graph", "-m", tmp_path / "graph" / "m.pth"], capsys)
    assert "recorded the forward and backward pass as CUDA graphs" in graphed
    weights = [load_checkpoint(tmp_path / run / "m.pth")["state_dict"]
               for run in ("plain", "graph")]
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_improved_recipes_step_never_waits_for_the_gpu():
    """train.py's step with every part of the improved recipe (augmentation,
    AdamW, one-cycle schedule, on-device totals), run with PyTorch's sync
    debug mode set to raise on anything that makes the host wait for the
    device."""
    from modules.lenet import LeNet
    from modules.recipes import RECIPES

    device = torch.device("cuda")
    recipe = RECIPES["improved"]
    model = LeNet(1, 10).to(device, memory_format=torch.channels_last)
    # as train.py builds them for this recipe
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=recipe.weight_decay,
                            fused=True)
    lossFn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    scheduler = recipe.schedule(opt, 4e-3, 1, 10)
    augment = recipe.augmentation(torch.Generator(device=device).manual_seed(0))
    x = torch.rand(64, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    total = torch.zeros((), device=device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            pred = model(augment(x).contiguous(memory_format=torch.channels_last))
            loss = lossFn(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()
            total += loss.detach() * y.size(0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert total.item() > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_gpu_check_script_says_when_there_is_no_gpu(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--data-dir", tmp_path,
                             "--tutorial-dir", tmp_path], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "no CUDA GPU here" in result.stderr
