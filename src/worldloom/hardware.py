"""What this machine's torch runs well, and the one CPU set-up every entry point calls.

- :func:`setup_cpu`: flush denormals to zero, and set the intra-op threads. Without the flush a CPU
  training run here slowed 10-20x after ~50 steps, as weights and activations decayed into
  denormals; every command, server thread and worker that runs torch calls it first.
- :func:`pick_device`: ``auto`` is CUDA where there is one, then MPS, else the CPU; training and
  loading (``--train-device``, ``--device``) resolve a device name through it.
- :func:`cpu_has_bf16` / :func:`bf16_supported`: whether bf16 matmuls run natively (a CPU with
  AVX-512-BF16 or AMX and oneDNN, or CUDA with bf16). Without them bf16 is emulated: autocast bf16
  made an arena training step 26x slower than fp32 on this 2-core CPU (50.6 s against 1.95 s), so
  training, loading and ``worldloom doctor`` pick bf16 only where this says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def setup_cpu(threads: int = 0) -> None:
    """Flush denormals; ``threads`` > 0 sets torch's intra-op threads (0 keeps torch's default)."""
    import torch

    torch.set_flush_denormal(True)
    if threads > 0:
        torch.set_num_threads(threads)


def cpu_has_bf16() -> bool:
    """Native bf16 matmuls on this CPU: oneDNN available and the CPU has AVX-512-BF16 or AMX-BF16."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: Any = None) -> bool:
    """Native bf16 on ``device`` (default: CUDA if there is one, else the CPU)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return dev.type == "cpu" and cpu_has_bf16()


def pick_device(name: str = "auto") -> Any:
    """``torch.device`` for ``name`` (cpu, cuda, cuda:N, mps); ``auto``: CUDA, then MPS, else the CPU.

    Raises ValueError when the named device is not on this machine, so a command fails before it loads anything.
    """
    import torch

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not (torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()):
        raise ValueError(f"device {name!r}: this machine's torch sees {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not mps:
        raise ValueError(f"device {name!r}: MPS is not available on this machine")
    return dev
