"""The next-scale generator: KV cache against the masked pass, the VVQ chain, sampling filters, and learning."""

import copy

import numpy as np
import pytest
import torch
import trimesh

from tests.conftest import tiny_model
from training.gen_data import token_map, views_of
from vatcodec import codec
from vatcodec.codec.models import weights_dir
from vatcodec.generation.checkpoint import load_generator, save_generator
from vatcodec.generation.config import GenConfig
from vatcodec.generation.image_input import to_tensor
from vatcodec.generation.model import NextScaleGenerator, sample_logits
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

TINY = {"width": 32, "depth": 2, "heads": 2, "cnn_widths": (8, 16), "image_size": 32}


def tiny_generator(tok, seed: int = 0, **overrides) -> NextScaleGenerator:
    """An untrained generator whose AdaLN modulation is not zero, so the condition really reaches every block."""
    torch.manual_seed(seed)
    gen = NextScaleGenerator(GenConfig.for_tokenizer(tok, **(TINY | overrides)), copy.deepcopy(tok.vq)).eval()
    with torch.no_grad():
        for block in gen.blocks:
            block.ada[1].weight.normal_(0.0, 0.2)
    return gen


@pytest.fixture(scope="module")
def tok():
    return tiny_model()


@pytest.fixture(scope="module")
def tok_tp():
    """A tokenizer with a triplane latent: every scale holds three grids of tokens."""
    from tests.test_triplane_latent import tiny_tp

    return tiny_tp().eval()


def random_batch(gen, B: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens_BL = torch.randint(0, gen.cfg.codebook_size, (B, gen.cfg.seq_len), generator=g)
    images = torch.rand(B, 3, gen.cfg.image_size, gen.cfg.image_size, generator=g) * 2 - 1
    return {"tokens": tokens_BL, "images": images}


@pytest.mark.parametrize("which", ["tok", "tok_tp"])
@pytest.mark.parametrize("cfg_scale", [0.0, 2.5])
def test_kv_cache_step_equals_masked_full_pass(which, cfg_scale, request):
    tok = request.getfixturevalue(which)
    gen = tiny_generator(tok)
    assert gen.cfg.seq_len == sum(tok.cfg.schedule)
    batch = random_batch(gen, 3)
    cond_BD = gen.condition(batch["images"])
    with torch.no_grad():
        full_BLV = gen.logits_full(cond_BD, gen.vq.teacher_inputs(gen.split(batch["tokens"])))
        if cfg_scale:  # the guided logits of the cached pass, recomputed from two full passes
            null_BD = gen.null_cond.expand(3, -1)
            null_BLV = gen.logits_full(null_BD, gen.vq.teacher_inputs(gen.split(batch["tokens"])))
            S, level_L = len(gen.cfg.scales), gen.level_L
            t_L1 = (cfg_scale * level_L / (S - 1))[:, None]
            full_BLV = (1 + t_L1) * full_BLV - t_L1 * null_BLV
    cached = gen.sample(cond_BD, cfg_scale, force=gen.split(batch["tokens"]))
    step_BLV = torch.cat(cached["logits"], dim=1)
    torch.testing.assert_close(step_BLV, full_BLV, atol=2e-5, rtol=1e-4)


def test_block_causal_mask_hides_later_scales(tok):
    gen = tiny_generator(tok)
    batch = random_batch(gen, 1)
    cond_BD = gen.condition(batch["images"])
    inputs_BlC = gen.vq.teacher_inputs(gen.split(batch["tokens"]))
    changed_BlC = inputs_BlC.clone()
    last = gen.counts[-1]
    changed_BlC[:, -last:] += 5.0  # only the last scale's inputs change
    with torch.no_grad():
        a_BLV, b_BLV = gen.logits_full(cond_BD, inputs_BlC), gen.logits_full(cond_BD, changed_BlC)
    torch.testing.assert_close(a_BLV[:, :-last], b_BLV[:, :-last])
    assert not torch.allclose(a_BLV[:, -last:], b_BLV[:, -last:])
    # Within a scale every token sees the whole scale (not a token-causal mask): change the LAST token of the
    # second-to-last scale and the FIRST token of that scale must change too.
    lo, hi = gen.cfg.seq_len - last - gen.counts[-2], gen.cfg.seq_len - last  # that scale's positions in L
    changed_BlC = inputs_BlC.clone()
    changed_BlC[:, hi - 2] += (
        5.0  # input position hi - 2 feeds sequence position hi - 1 (the start token is 0)
    )
    with torch.no_grad():
        c_BLV = gen.logits_full(cond_BD, changed_BlC)
    torch.testing.assert_close(a_BLV[:, :lo], c_BLV[:, :lo])
    assert not torch.allclose(a_BLV[:, lo], c_BLV[:, lo])


def test_training_inputs_equal_the_tokenizers_decode_chain():
    """Scale s's teacher input is Down_s of the tokenizer's own dequantized prefix of s scales."""
    vq = codec.get_model().vq  # the shipped tokenizer's VVQ: real Phi convs and codebook
    g = torch.Generator().manual_seed(1)
    P = vq.planes  # a triplane latent has P grids per scale, side by side in token order
    indices = [torch.randint(0, 4096, (2, P * pn * pn), generator=g) for pn in vq.scales]
    inputs_BlC = vq.teacher_inputs(indices)
    start = 0
    for s in range(1, len(vq.scales)):
        pn = vq.scales[s]
        prefix_GCHW = vq._to_grid(vq.decode(indices[:s]))
        want_BnC = vq._to_tokens(torch.nn.functional.interpolate(prefix_GCHW, size=(pn, pn), mode="area"))
        torch.testing.assert_close(inputs_BlC[:, start : start + P * pn * pn], want_BnC)
        start += P * pn * pn
    assert start == inputs_BlC.shape[1]
    # And the chain's final sum is the latent `vatcodec decode` reconstructs from.
    zhat = 0.0
    for si, idx in enumerate(indices):
        zhat, _ = vq.next_input(si, zhat, idx)
    torch.testing.assert_close(vq._to_tokens(zhat), vq.decode(indices))


def test_sample_logits_filters_and_seed():
    g = torch.Generator().manual_seed(0)
    logits_BnV = torch.randn(2, 50, 30, generator=g)
    assert torch.equal(sample_logits(logits_BnV, top_k=1), logits_BnV.argmax(-1))
    assert torch.equal(sample_logits(logits_BnV, temperature=0), logits_BnV.argmax(-1))
    top3_Bn3 = logits_BnV.topk(3, dim=-1).indices
    drawn_Bn = sample_logits(logits_BnV, top_k=3, generator=torch.Generator().manual_seed(1))
    assert (drawn_Bn[..., None] == top3_Bn3).any(-1).all()
    # The nucleus boundary: with p = (0.5, 0.3, 0.2) and top_p 0.6 the first two stay (0.5 < 0.6), the third goes.
    probs_11V = torch.tensor([[[0.5, 0.3, 0.2]]])
    draws = sample_logits(
        probs_11V.log().expand(1, 4000, 3), top_p=0.6, generator=torch.Generator().manual_seed(2)
    )
    assert set(draws.unique().tolist()) == {0, 1}
    # A tiny top_p keeps only the likeliest token.
    assert torch.equal(sample_logits(logits_BnV, top_p=1e-6, generator=g), logits_BnV.argmax(-1))
    a = sample_logits(logits_BnV, generator=torch.Generator().manual_seed(5))
    b = sample_logits(logits_BnV, generator=torch.Generator().manual_seed(5))
    c = sample_logits(logits_BnV, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_checkpoint_round_trip_fp16(tok, tmp_path):
    gen = tiny_generator(tok)
    ident = save_generator(tmp_path / "g.safetensors", gen, tok.cfg, dtype=torch.float16)
    back = load_generator(tmp_path / "g.safetensors")
    assert back.generator_id == ident and back.cfg == gen.cfg
    torch.testing.assert_close(back.vq.codebook.weight, gen.vq.codebook.weight, atol=0, rtol=0)  # kept fp32
    batch = random_batch(gen, 2)
    with torch.no_grad():
        torch.testing.assert_close(back(batch)["logits"], gen(batch)["logits"], atol=0.05, rtol=0.05)


def four_shapes(size: int):
    """Two prepared views and the vat-s token map of four distinct shapes.

    vat-s is the tokenizer the shipped generator predicts (its 655 tokens per shape); the budget below was set on it.
    """
    net = codec.get_model(str(weights_dir() / "vat-s.safetensors"))
    meshes = [
        load_mesh("examples/chair.obj"),
        trimesh.creation.box((1.0, 0.5, 0.3)),
        trimesh.creation.icosphere(2),
        trimesh.creation.cylinder(0.3, 1.0),
    ]
    images, tokens = [], []
    for i, mesh in enumerate(meshes):
        unit, _ = normalize_mesh(mesh)
        images.append(views_of(unit, f"shape-{i}", 2, 64, size, seed=0)[0])
        tokens.append(token_map(unit, net))
    return np.stack(images), torch.from_numpy(np.stack(tokens)).long(), net


def test_generator_overfits_four_shapes_from_their_renders():
    """The learning test: 4 shapes' full token maps (655 tokens each) from their renders, sampled at cfg 0."""
    images_NVHW3, tokens_NL, net = four_shapes(48)
    assert len({tuple(t[:16].tolist()) for t in tokens_NL}) == 4  # the shapes really differ
    torch.manual_seed(0)
    cfg = GenConfig.for_tokenizer(net, width=64, depth=2, heads=2, cnn_widths=(16, 32, 64), image_size=48)
    gen = NextScaleGenerator(cfg, copy.deepcopy(net.vq))
    opt = torch.optim.AdamW([p for p in gen.parameters() if p.requires_grad], lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        views = rng.integers(0, 2, 4)
        out = gen({"images": to_tensor(images_NVHW3[np.arange(4), views]), "tokens": tokens_NL})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    gen.eval()
    for view in (0, 1):
        cond_BD = gen.condition(to_tensor(images_NVHW3[:, view]))
        sampled = gen.sample(
            cond_BD, cfg_scale=0.0, temperature=1.0, generator=torch.Generator().manual_seed(0)
        )
        match_B = (torch.cat(sampled["indices"], dim=1) == tokens_NL).float().mean(dim=1)
        assert match_B.min() >= 0.95, match_B
