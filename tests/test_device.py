"""Where the model runs and in which arithmetic: choose_device and
choose_precision, with the machine's accelerators and CPU flags faked, and one
short bfloat16 run on the CPU whatever this CPU computes natively."""

import json
import os

import pytest
import torch

from conftest import run_script
from modules import hardware
from modules.console import UserError
from modules.hardware import choose_device, choose_precision


def fake_machine(monkeypatch, accelerator=None, cuda=False, mps=False):
    """A machine whose torch.accelerator reports ``accelerator`` ("cuda",
    "mps" or None) and whose CUDA and MPS backends say ``cuda`` and ``mps``."""
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: accelerator is not None)
    monkeypatch.setattr(torch.accelerator, "current_accelerator",
                        lambda: torch.device(accelerator) if accelerator else None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("name, accelerator, cuda, mps, expected", [
    ("auto", "cuda", True, False, "cuda"),
    ("auto", "mps", False, True, "mps"),
    ("auto", None, False, False, "cpu"),
    ("cuda", None, False, False, "PyTorch sees no CUDA GPU"),
    ("cuda", "mps", False, True, "PyTorch sees no CUDA GPU"),
    ("mps", "cuda", True, False, "MPS is not available on this machine"),
])
def test_choose_device(monkeypatch, name, accelerator, cuda, mps, expected):
    fake_machine(monkeypatch, accelerator, cuda, mps)
    if expected in ("cpu", "cuda", "mps"):
        assert choose_device(name) == torch.device(expected)
    else:
        with pytest.raises(UserError, match=expected):
            choose_device(name)


@pytest.mark.parametrize("name, device, cpu_bf16, cuda_bf16, expected", [
    # auto: bfloat16 only on a CPU that computes it in hardware
    ("auto", "cpu", True, False, torch.bfloat16),
    ("auto", "cpu", False, False, None),
    ("auto", "cuda", False, True, None),
    ("auto", "mps", True, False, None),
    # fp32 always means float32
    ("fp32", "cpu", True, False, None),
    ("fp32", "cuda", False, True, None),
    # bf16 is obeyed (emulated on a CPU without it), but refused on a GPU
    # that would only emulate it
    ("bf16", "cpu", False, False, torch.bfloat16),
    ("bf16", "cuda", False, True, torch.bfloat16),
    ("bf16", "cuda", False, False, "does not compute bfloat16 in hardware"),
])
def test_choose_precision(monkeypatch, name, device, cpu_bf16, cuda_bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: cuda_bf16)
    if isinstance(expected, str):
        with pytest.raises(UserError, match=expected):
            choose_precision(name, torch.device(device))
    else:
        assert choose_precision(name, torch.device(device)) is expected


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),  # AMD Zen 4
    ("fpu avx2 avx512f amx_bf16 amx_tile amx_int8", True),  # Intel Sapphire Rapids
    ("fpu sse2 avx2 fma", False),  # AMD Zen 3
    ("fpu avx2 avx512f avx512_bf16x", False),  # a longer flag is not the flag
    (None, False),  # no /proc/cpuinfo (not Linux): no guess
])
def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    real_open = open
    monkeypatch.setattr(hardware, "open",
                        lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo"
                                                        else path, *a, **k), raising=False)
    assert hardware.cpu_has_native_bf16() is native


def test_one_bf16_epoch_on_the_cpu(kmnist_dir, tmp_path, run):
    """The bfloat16 path runs here even on a CPU whose `auto` is float32."""
    result = run("train.py", "--data-dir", kmnist_dir, "--no-download", "--epochs", 1,
                 "--device", "cpu", "--precision", "bf16", "-m", tmp_path / "m.pth",
                 "-p", tmp_path / "p.png")
    assert result.returncode == 0, result.stderr
    assert "[INFO] training on cpu (bf16 mixed precision) with the tutorial recipe" \
        in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # ten classes: chance is 0.1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_gpu_check_script_says_when_there_is_no_gpu(tmp_path):
    result = run_script(os.path.join("benchmarks", "gpu_check.py"), "--data-dir", tmp_path,
                        "--tutorial-dir", tmp_path, timeout=300)
    assert result.returncode == 1 and "no CUDA GPU here" in result.stderr
