"""Loading weights: a tensor of the wrong dtype, shape or value is an error naming it, not garbage."""

import pytest
import torch

from worldloom.checkpoint import CheckpointError, load_strict


def _module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_float_precisions_load_and_cast():
    src, dst = _module(), torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    sd = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in src.state_dict().items()}
    load_strict(dst, sd, where="w.safetensors")
    assert dst[0].weight.dtype == torch.float32 and torch.allclose(dst[0].weight, src[0].weight, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.uint8])
def test_integer_or_bool_weights_are_refused_by_name(dtype):
    sd = dict(_module().state_dict())
    sd["0.weight"] = sd["0.weight"].to(dtype)
    with pytest.raises(CheckpointError, match=r"w\.safetensors: dtype mismatch 0\.weight: file torch\.\w+ vs model torch\.float32"):
        load_strict(_module(), sd, where="w.safetensors")


def test_a_float_where_the_module_counts_is_refused():
    sd = dict(_module().state_dict())
    sd["1.num_batches_tracked"] = sd["1.num_batches_tracked"].float()
    with pytest.raises(CheckpointError, match="1.num_batches_tracked: file torch.float32 vs model torch.int64"):
        load_strict(_module(), sd, where="w")


def test_nan_weights_are_refused_by_name():
    sd = dict(_module().state_dict())
    sd["0.bias"] = sd["0.bias"].clone()
    sd["0.bias"][1] = float("nan")
    with pytest.raises(CheckpointError, match=r"w: non-finite values \(NaN or inf\) in 0\.bias"):
        load_strict(_module(), sd, where="w")


def test_shape_and_key_mismatches_are_listed():
    sd = dict(_module().state_dict())
    sd["0.weight"] = torch.zeros(4, 5)
    del sd["0.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \['0.bias'\].*shape mismatch 0.weight: file \(4, 5\) vs model \(4, 3\)"):
        load_strict(_module(), sd, where="w")
