"""The CUDA-graph step's plumbing, checked on the CPU (recording itself needs a GPU)."""

import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from modules.cuda_graph import GraphedTrainingStep, graph_problem
from modules.lenet import LeNet
from modules.recipes import RECIPES, recipe_parts
from modules.training import train_one_epoch


def train_twice(batches, **graph_options):
    """The same two epochs, plainly and through GraphedTrainingStep's static buffers."""
    weights = []
    for graphed in (False, True):
        torch.manual_seed(0)
        model = LeNet(1, 10)
        parts = recipe_parts(RECIPES["improved"], model, lr=4e-3, epochs=2,
                             steps_per_epoch=len(batches), device=torch.device("cpu"))
        step = (GraphedTrainingStep(model, parts.lossFn, parts.opt, **graph_options)
                if graphed else None)
        for _ in range(2):
            (loss, accuracy) = train_one_epoch(model, batches, parts.lossFn, parts.opt,
                                               torch.device("cpu"), scheduler=parts.scheduler,
                                               averaged=parts.averaged, step=step)
        weights.append((parts.averaged.module.state_dict(), loss, accuracy, step))
    return weights


def test_static_buffers_train_exactly_like_the_plain_loop():
    generator = torch.Generator().manual_seed(1)
    # four full batches of 16 and a partial one of 5, as a DataLoader hands them over
    batches = [(torch.rand(n, 1, 28, 28, generator=generator),
                torch.randint(0, 10, (n,), generator=generator)) for n in (16, 16, 16, 16, 5)]
    (plain, loss, accuracy, _), (graphed, graphedLoss, graphedAccuracy, step) = \
        train_twice(batches, record=False)
    for name in plain:
        assert torch.equal(plain[name], graphed[name]), name
    assert (loss, accuracy) == (graphedLoss, graphedAccuracy)
    assert step.graph is None and step.eagerSteps == 10 and step.problem is None
    assert step.static[0].shape == (16, 1, 28, 28)  # shaped by the first (full) batch


def test_the_cpu_has_no_cuda_graphs():
    assert "need a CUDA GPU" in graph_problem(torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_recorded_step_trains_like_the_plain_loop_on_cuda():
    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.rand(n, 1, 28, 28, generator=generator).to(device),
                torch.randint(0, 10, (n,), generator=generator).to(device))
               for n in (16,) * 8 + (5,)]
    results = []
    for graphed in (False, True):
        torch.manual_seed(0)
        model = LeNet(1, 10).to(device)
        parts = recipe_parts(RECIPES["improved"], model, lr=4e-3, epochs=2,
                             steps_per_epoch=len(batches), device=device, capturable=graphed)
        step = GraphedTrainingStep(model, parts.lossFn, parts.opt) if graphed else None
        for _ in range(2):
            train_one_epoch(model, batches, parts.lossFn, parts.opt, device,
                            scheduler=parts.scheduler, averaged=parts.averaged, step=step)
        results.append(parts.averaged.module.state_dict())
        if graphed:
            assert step.graph is not None, step.problem
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_gpu_check_script_says_when_there_is_no_gpu(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--data-dir", tmp_path,
                             "--tutorial-dir", tmp_path], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "no CUDA GPU here" in result.stderr
