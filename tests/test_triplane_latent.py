"""The triplane latent (`latent_planes=3`): pooling where the decoder reads, per-plane VVQ, codec round trips."""

import pytest
import torch
import torch.nn.functional as F
import trimesh

from vatcodec import codec
from vatcodec.codec.bitstream import unpack
from vatcodec.model.checkpoint import save_checkpoint
from vatcodec.model.config import get_config
from vatcodec.model.decoder import _plane_grid
from vatcodec.model.plane_pool import plane_cells, scatter_mean
from vatcodec.model.tokenizer import VAT

TINY_TP = {"latent_planes": 3, "num_latents": 48, "scales": (1, 2, 3, 4), "plane_res": 4, "scatter_res": 16}


def tiny_tp(**more) -> VAT:
    torch.manual_seed(0)
    return VAT(get_config("vat-tiny", **TINY_TP, **more))


def test_schedule_counts_every_plane():
    cfg = get_config("vat-tiny", **TINY_TP)
    assert cfg.schedule == (3, 12, 27, 48) and cfg.grid == 4
    with pytest.raises(ValueError, match="plane_res"):
        get_config("vat-tiny", **{**TINY_TP, "plane_res": 8})
    with pytest.raises(ValueError, match="3 squares"):
        get_config("vat-tiny", **{**TINY_TP, "num_latents": 50})
    with pytest.raises(ValueError, match="num_point_queries"):
        get_config("vat-tiny", num_point_queries=0)  # one grid: nothing else would read the points


def test_scatter_mean_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    xyz_BN3 = torch.rand(2, 50, 3, generator=g) - 0.5
    feat_BNC = torch.randn(2, 50, 5, generator=g)
    res = 4
    got = scatter_mean(feat_BNC, plane_cells(xyz_BN3, res), res).view(2, 3, 5, res, res)
    ij = ((xyz_BN3 + 0.5) * res).floor().long()
    for b in range(2):
        for p, (w, h) in enumerate(((0, 1), (1, 2), (0, 2))):
            for r in range(res):
                for c in range(res):
                    hit = (ij[b, :, h] == r) & (ij[b, :, w] == c)
                    want = feat_BNC[b, hit].mean(0) if hit.any() else torch.zeros(5)
                    torch.testing.assert_close(got[b, p, :, r, c], want)


def test_pooling_writes_where_the_decoder_samples():
    """A cell tagged with its own index, sampled at a point, returns the cell the pooling put the point in."""
    res = 8
    xyz_BN3 = torch.rand(1, 500, 3, generator=torch.Generator().manual_seed(1)) - 0.5
    tags_N1rr = torch.arange(res * res, dtype=torch.float32).view(1, 1, res, res).expand(3, 1, res, res)
    seen_31M = F.grid_sample(tags_N1rr, _plane_grid(xyz_BN3), mode="nearest", align_corners=False)
    assert torch.equal(seen_31M.view(1, 3, -1).long(), plane_cells(xyz_BN3, res))


def test_planes_are_quantized_independently():
    net = tiny_tp().eval()
    z_BKC = torch.randn(1, 48, net.cfg.latent_dim, generator=torch.Generator().manual_seed(2))
    other = z_BKC.clone()
    other[:, 32:] += 1.0  # only the third plane (XZ) changes
    a, b = net.vq.encode(z_BKC), net.vq.encode(other)
    for si, pn in enumerate(net.cfg.scales):
        assert a[si].shape == (1, 3 * pn * pn)
        assert torch.equal(a[si][:, : 2 * pn * pn], b[si][:, : 2 * pn * pn])


def test_training_quantizer_equals_inference():
    net = tiny_tp(prefix_prob=0.0).eval()
    z_BKC = torch.randn(2, 48, net.cfg.latent_dim, generator=torch.Generator().manual_seed(3))
    q = net.vq.quantize(z_BKC)
    idx = net.vq.encode(z_BKC)
    assert all(torch.equal(i, j) for i, j in zip(q["indices"], idx, strict=True))
    torch.testing.assert_close(q["zhat"], net.vq.decode(idx))


def test_trains_and_round_trips_through_the_codec(tmp_path):
    net = tiny_tp()
    g = torch.Generator().manual_seed(0)
    B, M = 2, 64
    batch = {
        "surface_points": torch.rand(B, net.cfg.num_points, 3, generator=g) - 0.5,
        "surface_normals": F.normalize(torch.randn(B, net.cfg.num_points, 3, generator=g), dim=-1),
        "query_points": torch.rand(B, M, 3, generator=g) - 0.5,
        "query_occ": (torch.rand(B, M, generator=g) > 0.7).float(),
    }
    out = net(batch, torch.Generator().manual_seed(1))
    out["loss"].backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if n.startswith("encoder.pool"))
    path = tmp_path / "tp.safetensors"
    save_checkpoint(path, net.eval())
    model = codec.get_model(path)
    data = codec.encode(trimesh.creation.torus(1.0, 0.3), model=model)
    vat = unpack(data)
    assert vat.schedule == (3, 12, 27, 48) and [len(i) for i in vat.indices] == [3, 12, 27, 48]
    for n in (1, 2, 4):
        field = model.decode([torch.as_tensor(i[None]) for i in vat.indices[:n]])
        assert field(torch.zeros(1, 5, 3)).shape == (1, 5)
