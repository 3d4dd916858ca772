"""The visibility rule's two forms agree: FlexAttention's block mask and SDPA's boolean mask give the
same attention, alone and inside the DiT's uncached (training) pass. Forward only: FlexAttention has no
backward on CPU, which is why training keeps SDPA there."""

from __future__ import annotations

import warnings

import pytest
import torch

from worldloom.models.attention import attend, block_mask, flex_available, frame_layout, use_flex, visibility_mask

pytestmark = [pytest.mark.skipif(not flex_available(), reason="this torch has no FlexAttention"),
              pytest.mark.filterwarnings("ignore::UserWarning")]  # eager flex on CPU warns that it is unfused


@pytest.mark.parametrize("n_frames,n_streams,window", [(3, 1, None), (4, 2, None), (8, 2, 3), (5, 1, 2)])
def test_block_mask_attends_as_the_boolean_mask(n_frames, n_streams, window) -> None:
    n_tok = 16
    frame, stream = frame_layout(n_frames, n_tok, n_streams)
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, frame.numel(), 16, generator=g).unbind(0)  # (B, H, L, hd) each
    want = attend(q, k, v, visibility_mask(frame, stream, window))
    got = attend(q, k, v, block_mask(frame, stream, window))
    assert torch.allclose(got, want, atol=1e-5)
    full = attend(q, k, v, None)  # the rule matters: all-visible attention is different
    assert not torch.allclose(full, want, atol=1e-3)


def test_the_dit_predicts_the_same_through_either_path() -> None:
    from worldloom.models.dit import CausalDiT, DynamicsConfig

    torch.manual_seed(0)
    dit = CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=2, heads=2, max_frames=4,
                                   prev_halo=1, conv=3, pred="delta"))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # adaLN-Zero starts as the identity: exercise attention
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(2, 2, 4, 4, 8, 8, generator=g).unbind(0)
    t, ctx_t = torch.rand(2, 2, 4, generator=g).unbind(0)
    a = torch.randint(0, 5, (2, 4), generator=g)
    out = []
    for backend in ("sdpa", "flex"):
        dit.set_attention(backend)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out.append(dit(x, t, a, ctx=ctx, ctx_t=ctx_t, window=3))
    assert sum(not isinstance(m, torch.Tensor) for m in dit._masks.values()) == 1  # the flex pass used a block mask
    assert torch.allclose(out[0], out[1], atol=1e-5)


def test_backends_are_checked() -> None:
    from worldloom.models.dit import CausalDiT, DynamicsConfig
    from worldloom.training.loop import TrainConfig, Trainer

    assert not use_flex("auto", torch.device("cpu")) and use_flex("flex", torch.device("cpu"))
    with pytest.raises(ValueError, match="attention backend"):
        use_flex("fast", torch.device("cpu"))

    class Linear:
        model, items_name = torch.nn.Linear(2, 1), "items"

    with pytest.raises(ValueError, match="--train-attention flex: Linear"):
        Trainer(Linear(), TrainConfig(attention="flex", device="cpu"), "unused", progress=False)
    with pytest.raises(ValueError, match="no backward on CPU"):
        Trainer(type("T", (), {"model": CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=1,
                                                               heads=2, max_frames=4))})(),
                TrainConfig(attention="flex", device="cpu"), "unused", progress=False)
