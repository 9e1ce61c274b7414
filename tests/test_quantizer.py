"""VVQ tests: Algorithm 1's invariants, progressive prefixes, schedule, determinism, straight-through."""

import pytest
import torch

from vatcodec.model.config import get_config
from vatcodec.model.quantizer import MultiScaleVQ


@pytest.fixture
def vq():
    torch.manual_seed(0)
    return MultiScaleVQ(get_config("vat-tiny", scales=(1, 2, 3, 4, 6, 8), num_latents=64)).eval()


def test_token_counts_match_schedule(vq):
    z = torch.randn(3, 64, vq.dim)
    idx = vq.encode(z)
    assert [tuple(t.shape) for t in idx] == [(3, s * s) for s in vq.scales]
    assert all(t.dtype == torch.long and t.min() >= 0 and t.max() < vq.codebook.num_embeddings for t in idx)


def test_dequantized_latent_is_sum_of_upsampled_scales(vq):
    z = torch.randn(2, 64, vq.dim)
    idx = vq.encode(z)
    manual = sum(vq.up(s, vq.embed(t, vq.scales[s])) for s, t in enumerate(idx))  # (B, C, H, W)
    assert torch.allclose(vq.decode(idx), manual.flatten(2).transpose(1, 2), atol=1e-6)


def test_residual_chain_matches_algorithm_1(vq):
    # Z_{s+1} = Z_s - Up(x_s), so Z_0 - sum_s Up(x_s) is the final residual, and the error shrinks with scales.
    z = torch.randn(2, 64, vq.dim)
    idx = vq.encode(z)
    errors = [(z - vq.decode(idx[: n + 1])).pow(2).mean().item() for n in range(len(idx))]
    assert errors[-1] < errors[0]


def test_every_prefix_decodes(vq):
    idx = vq.encode(torch.randn(2, 64, vq.dim))
    for n in range(1, len(idx) + 1):
        assert vq.decode(idx[:n]).shape == (2, 64, vq.dim)
    with pytest.raises(ValueError):
        vq.decode([])


def test_encode_is_deterministic(vq):
    z = torch.randn(2, 64, vq.dim)
    a, b = vq.encode(z), vq.encode(z.clone())
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_training_quantize_equals_inference_chain(vq):
    # The training pass must pick the same indices as inference, and the full-prefix output must equal decode.
    vq.prefix_prob = 0.0
    z = torch.randn(2, 64, vq.dim)
    q = vq.quantize(z)
    idx = vq.encode(z)
    assert all(torch.equal(x, y) for x, y in zip(q["indices"], idx, strict=True))
    assert torch.allclose(q["zhat"], vq.decode(idx), atol=1e-5)


def test_straight_through_passes_gradient_to_latent_and_codebook(vq):
    vq.train()
    vq.prefix_prob = 0.0
    z = torch.randn(2, 64, vq.dim, requires_grad=True)
    q = vq.quantize(z)
    (q["zhat"].sum() + q["loss_vq"]).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert vq.codebook.weight.grad.abs().sum() > 0


def test_prefix_sampling_uses_generator():
    vq = MultiScaleVQ(get_config("vat-tiny", prefix_prob=1.0)).train()
    z = torch.randn(64, 16, vq.dim)
    a = vq.quantize(z, generator=torch.Generator().manual_seed(1))["keep"]
    b = vq.quantize(z, generator=torch.Generator().manual_seed(1))["keep"]
    assert torch.equal(a, b) and a.min() >= 1 and a.max() <= len(vq.scales) and len(set(a.tolist())) > 1


def test_dead_codes_are_reseeded_from_data(vq):
    vq.train()
    z = torch.randn(4, 64, vq.dim) * 3.0 + 10.0  # far from the initial codebook
    vq.quantize(z)
    vq.code_age.fill_(50)
    rows, new = vq.restart_dead_codes(z, max_age=10, generator=torch.Generator().manual_seed(0))
    assert len(rows) == len(new) == vq.codebook.num_embeddings
    assert vq.codebook.weight.mean().item() > 5.0  # the codes moved to where the latents are
