"""VAT model tests: the codec contract, determinism, config round trips, and the paper-sized vat-l."""

import dataclasses
import time

import pytest
import torch

from vatcodec.model.checkpoint import load_model, model_id, save_checkpoint
from vatcodec.model.config import CONFIGS, VATConfig, get_config
from vatcodec.model.tokenizer import VAT


def tiny_batch(cfg: VATConfig, B: int = 2, N: int | None = None, M: int = 256, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    N = N or cfg.num_points
    normals = torch.randn(B, N, 3, generator=g)
    return {
        "surface_points": torch.rand(B, N, 3, generator=g) - 0.5,
        "surface_normals": normals / normals.norm(dim=-1, keepdim=True),
        "query_points": torch.rand(B, M, 3, generator=g) - 0.5,
        "query_occ": torch.rand(B, M, generator=g),
    }


def surface(batch: dict) -> torch.Tensor:
    return torch.cat([batch["surface_points"], batch["surface_normals"]], dim=-1)


def test_contract_encode_decode_every_prefix():
    cfg = get_config("vat-tiny")
    model = VAT(cfg).eval()
    batch = tiny_batch(cfg)
    idx = model.encode(surface(batch))
    assert [t.shape[1] for t in idx] == list(cfg.schedule)
    for n in range(1, len(idx) + 1):
        logits = model.decode(idx[:n])(batch["query_points"])
        assert logits.shape == (2, 256) and torch.isfinite(logits).all()


def test_encode_decode_deterministic_on_cpu():
    cfg = get_config("vat-tiny")
    torch.manual_seed(0)
    a = VAT(cfg).eval()
    torch.manual_seed(0)
    b = VAT(cfg).eval()
    batch = tiny_batch(cfg)
    ia, ib = a.encode(surface(batch)), b.encode(surface(batch))
    assert all(torch.equal(x, y) for x, y in zip(ia, ib, strict=True))
    assert torch.equal(a.decode(ia)(batch["query_points"]), b.decode(ib)(batch["query_points"]))


def test_forward_losses_and_stage1():
    cfg = get_config("vat-tiny")
    model = VAT(cfg)
    out = model(tiny_batch(cfg), torch.Generator().manual_seed(0))
    assert set(out) >= {"loss", "loss_occ", "loss_vq", "loss_kl", "logits", "indices"}
    expected = cfg.w_occ * out["loss_occ"] + cfg.w_vq * out["loss_vq"] + cfg.w_kl * out["loss_kl"]
    assert torch.allclose(out["loss"], expected)
    model.quantize = False
    out = model(tiny_batch(cfg), torch.Generator().manual_seed(0))
    assert out["loss_vq"].item() == 0.0 and "indices" not in out


def test_config_json_round_trip_and_model_id(tmp_path):
    for cfg in CONFIGS.values():
        assert VATConfig.from_json(cfg.to_json()) == cfg
    cfg = get_config("vat-tiny")
    torch.manual_seed(0)
    model = VAT(cfg).eval()
    ident = save_checkpoint(tmp_path / "m.safetensors", model, dtype=torch.float16)
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.model_id == ident == model_id(loaded.cfg, loaded.state_dict())
    renamed = get_config("vat-tiny", name="renamed", w_kl=1.0)
    assert model_id(renamed, loaded.state_dict()) == ident  # names and loss weights do not decode anything
    with torch.no_grad():
        loaded.encoder.to_gauss.weight.add_(1e-3)
    assert model_id(loaded.cfg, loaded.state_dict()) == ident  # a re-trained encoder keeps files decodable
    with torch.no_grad():
        loaded.decoder.mlp[0].weight.add_(1e-3)
    assert model_id(loaded.cfg, loaded.state_dict()) != ident  # the id tracks the decoder weights


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    from safetensors.torch import save_file

    from vatcodec.errors import VatError

    bad = tmp_path / "bad.safetensors"
    save_file(
        {"model.x": torch.zeros(1)}, str(bad), metadata={"format": "vatcodec-tokenizer-1", "config": "{}"}
    )
    with pytest.raises(VatError, match="does not match this version"):
        load_model(bad)
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 8)
    with pytest.raises(VatError, match="not a readable safetensors"):
        load_model(tmp_path / "junk.safetensors")


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError):
        get_config("vat-tiny", num_latents=15)
    with pytest.raises(ValueError):
        get_config("vat-tiny", scales=(1, 3, 2, 4))
    with pytest.raises(KeyError):
        get_config("vat-xxl")


def test_vat_l_builds_and_runs_forward_backward():
    cfg = get_config("vat-l")
    with torch.device("meta"):  # the full model's size without allocating or initialising 195 M parameters
        n_params = sum(p.numel() for p in VAT(cfg).parameters())
    assert n_params > 100e6
    # Every width, token count and scale of the paper's size, one block deep: the full depth only repeats them
    # (and cost CI 1.5 minutes of one core).
    cfg = dataclasses.replace(cfg, enc_depth=1, dec_depth=1)
    torch.manual_seed(0)
    model = VAT(cfg)
    t = time.time()
    out = model(tiny_batch(cfg, B=1, N=128, M=64), torch.Generator().manual_seed(0))
    out["loss"].backward()
    print(f"vat-l: {n_params / 1e6:.1f} M parameters, one forward+backward in {time.time() - t:.1f} s")
    assert [t.shape[1] for t in out["indices"]] == [1, 4, 9, 16, 25, 36, 64, 100, 169, 196, 576, 1024]
    assert model.encoder.point_queries_QD.grad is not None


@pytest.mark.parametrize("config_name", ["vat-tiny", "vat-s"])
def test_inference_query_equals_training_query(config_name):
    """The decoder's no-grad query path (used by the codec) gives the training path's logits, bit for bit."""
    torch.manual_seed(0)
    net = VAT(get_config(config_name)).eval()
    for p in net.decoder.mlp.parameters():  # non-trivial MLP weights, not just the init
        p.data.add_(torch.randn_like(p) * 0.1)
    zhat_BKC = torch.randn(2, net.cfg.num_latents, net.cfg.latent_dim)
    points_BM3 = torch.rand(2, 3000, 3) - 0.5
    with torch.enable_grad():
        planes = net.decoder.planes(zhat_BKC)
        train_BM = net.decoder.query(planes, points_BM3)
    with torch.no_grad():
        infer_BM = net.decoder.query([p.detach() for p in planes], points_BM3)
    assert torch.equal(train_BM.detach(), infer_BM)
