"""The tokenizer's options: residual plane path, FPS queries, logit bias and iso level, and model-id stability."""

import dataclasses

import pytest
import torch

from vatcodec.model.config import VATConfig, get_config
from vatcodec.model.decoder import ResUpBlock
from vatcodec.model.encoder import farthest_point_indices
from vatcodec.model.tokenizer import VAT


def batch(cfg: VATConfig, B: int = 2, M: int = 64) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "surface_points": torch.rand(B, cfg.num_points, 3, generator=g) - 0.5,
        "surface_normals": torch.nn.functional.normalize(
            torch.randn(B, cfg.num_points, 3, generator=g), dim=-1
        ),
        "query_points": torch.rand(B, M, 3, generator=g) - 0.5,
        "query_occ": (torch.rand(B, M, generator=g) > 0.7).float(),
        "query_sdf": (torch.rand(B, M, generator=g) - 0.5) * 0.2,
    }


@pytest.mark.parametrize(
    "overrides",
    [{"plane_block": "res", "plane_min_channels": 16}, {"point_queries": "fps"}, {"out_bias": -1.0}],
)
def test_every_option_trains_end_to_end(overrides):
    torch.manual_seed(0)
    net = VAT(get_config("vat-tiny", **overrides))
    out = net(batch(net.cfg), torch.Generator().manual_seed(1))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith("decoder."))


def test_far_weight_reweights_the_occupancy_loss():
    torch.manual_seed(0)
    plain = VAT(get_config("vat-tiny"))
    heavy = VAT(get_config("vat-tiny", w_far=4.0))
    heavy.load_state_dict(plain.state_dict())
    b = batch(plain.cfg)
    base = plain(b, torch.Generator().manual_seed(1))
    out = heavy(b, torch.Generator().manual_seed(1))
    far = b["query_sdf"].abs() > 4 * plain.cfg.label_band
    assert 0 < far.float().mean() < 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        base["logits"], b["query_occ"], reduction="none"
    )
    w = 1.0 + 3.0 * far.float()
    assert out["loss_occ"].item() == pytest.approx(((w * bce).sum() / w.sum()).item(), rel=1e-5)
    assert base["loss_occ"].item() == pytest.approx(bce.mean().item(), rel=1e-6)
    assert out["loss_occ"].item() != pytest.approx(base["loss_occ"].item(), rel=1e-3)


def test_residual_block_starts_as_its_up_sampling_conv():
    block = ResUpBlock(8, 16)
    x = torch.randn(2, 8, 5, 5)
    up = block.up(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
    assert torch.equal(
        block(x), up
    )  # the zero-initialised last conv: the residual branch adds nothing at first


def test_farthest_points_take_one_point_per_cluster_first():
    centres = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    pts = (
        centres[:, None] + 0.01 * torch.randn(4, 50, 3, generator=torch.Generator().manual_seed(0))
    ).reshape(1, -1, 3)
    idx = farthest_point_indices(pts, 4)[0]
    assert idx[0] == 0 and sorted((idx // 50).tolist()) == [0, 1, 2, 3]


def test_iso_logit_shifts_the_field_and_the_model_id():
    torch.manual_seed(0)
    cfg = get_config("vat-tiny")
    net = VAT(cfg).eval()
    idx = net.encode(torch.cat([batch(cfg)["surface_points"], batch(cfg)["surface_normals"]], -1))
    q = torch.rand(2, 32, 3) - 0.5
    base = net.decode(idx)(q)
    net.cfg = dataclasses.replace(cfg, iso_logit=1.5)
    assert torch.allclose(net.decode(idx)(q), base - 1.5)
    assert net.cfg.decode_json() != cfg.decode_json()


def test_new_fields_leave_old_model_ids_alone():
    # Decode-side fields added later join the hashed JSON only when they differ from their defaults, so the
    # models trained before them (and their files) keep their ids.
    old = get_config("vat-s").decode_json()
    assert "plane_block" not in old and "iso_logit" not in old
    assert "plane_block" in get_config("vat-s", plane_block="res").decode_json()
    assert get_config("vat-s", label_dilate=0.01, out_bias=-1.0).decode_json() == old  # training-only fields


def test_bad_option_values_are_refused():
    with pytest.raises(ValueError, match="plane_block"):
        get_config("vat-tiny", plane_block="deconv")
    with pytest.raises(ValueError, match="point_queries"):
        get_config("vat-tiny", point_queries="random")
