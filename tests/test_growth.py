"""Growing a trained tokenizer (`--init --grow`): new blocks, pooling rounds and plane blocks start as the identity."""

import dataclasses
import json

import pytest
import torch

from tests.test_training import tiny_args, write_cache
from tests.test_triplane_latent import TINY_TP
from training.checkpointing import load_weights
from training.tokenizer import train
from vatcodec.model.checkpoint import read_checkpoint, split_state
from vatcodec.model.config import get_config
from vatcodec.model.plane_pool import gather_cells, plane_cells
from vatcodec.model.tokenizer import VAT


def tiny_tp(seed: int, **more) -> VAT:
    torch.manual_seed(seed)
    return VAT(get_config("vat-tiny", **TINY_TP, **more)).eval()


def surface(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    normals_BN3 = torch.nn.functional.normalize(torch.randn(2, 300, 3, generator=g), dim=-1)
    return torch.cat([torch.rand(2, 300, 3, generator=g) - 0.5, normals_BN3], dim=-1)


def test_gather_reads_each_points_cell_on_every_plane():
    res = 8
    xyz_BN3 = torch.rand(2, 200, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    # Each cell holds its own flat index (channel 0) and its plane (channel 1).
    index_rr = torch.arange(res * res, dtype=torch.float32).view(res, res)
    planes_NCrr = torch.stack(
        [torch.stack([index_rr, torch.full_like(index_rr, p)]) for _ in range(2) for p in range(3)]
    )
    got_BN6 = gather_cells(planes_NCrr, plane_cells(xyz_BN3, res))
    got_BN32 = got_BN6.view(2, 200, 3, 2)
    assert torch.equal(got_BN32[..., 0].long(), plane_cells(xyz_BN3, res).transpose(1, 2))
    assert torch.equal(got_BN32[..., 1], torch.tensor([0.0, 1.0, 2.0]).expand(2, 200, 3))


def test_a_grown_model_computes_what_it_grew_from():
    small = tiny_tp(0)
    with torch.no_grad():  # a trained-looking model: no zero layers that would hide a mistake
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    big = tiny_tp(1, enc_depth=3, pool_rounds=2, fine_res=64, plane_refine=2)
    new = load_weights(big, small.state_dict(), grow=True)
    for part in ("encoder.blocks.2.", "encoder.pool.rounds.1.", "encoder.pool.fine.", "decoder.refine.0.1."):
        assert any(k.startswith(part) for k in new), part
    s = surface(3)
    mu_small, _ = small.encoder(s)
    mu_big, _ = big.encoder(s)
    torch.testing.assert_close(mu_big, mu_small, rtol=0, atol=1e-6)
    indices = small.encode(s)
    assert [i.tolist() for i in big.encode(s)] == [i.tolist() for i in indices]
    queries_BM3 = torch.rand(2, 500, 3, generator=torch.Generator().manual_seed(4)) - 0.5
    with torch.no_grad():
        logits_small = small.decode(indices)(queries_BM3)
        logits_big = big.decode(indices)(queries_BM3)
    torch.testing.assert_close(logits_big, logits_small, rtol=0, atol=1e-5)


def test_a_grown_pyramid_starts_as_the_identity_and_each_level_reads_its_first_points():
    small = tiny_tp(0)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    big = tiny_tp(1, num_points=150, pyramid=(300, 600))
    assert big.cfg.input_points == 600
    new = load_weights(big, small.state_dict(), grow=True)
    assert new and all(k.startswith(("encoder.pyramid_reads.0.", "encoder.pyramid_reads.1.")) for k in new)
    g = torch.Generator().manual_seed(5)
    s_BN6 = torch.cat([torch.rand(2, 600, 3, generator=g) - 0.5, torch.randn(2, 600, 3, generator=g)], -1)

    def moved(lo: int, hi: int) -> torch.Tensor:
        out_BN6 = s_BN6.clone()
        out_BN6[:, lo:hi, :3] = out_BN6[:, lo:hi, :3].flip(1)
        return out_BN6

    mu_small, _ = small.encoder(s_BN6[:, :150])  # the grown model pools the first num_points, as before
    torch.testing.assert_close(big.encoder(s_BN6)[0], mu_small, rtol=0, atol=1e-6)
    with torch.no_grad():
        for p in big.encoder.pyramid_reads.parameters():  # a trained pyramid
            p.add_(0.05 * torch.randn_like(p))
        mu_BKC = big.encoder(s_BN6)[0]
        assert not torch.allclose(big.encoder(moved(300, 600))[0], mu_BKC, atol=1e-4)  # the 600-point level
        big.encoder.pyramid_reads[1].zero_init_()  # only the 300-point level reads now
        mu_BKC = big.encoder(s_BN6)[0]
        torch.testing.assert_close(big.encoder(moved(300, 600))[0], mu_BKC, rtol=0, atol=1e-6)
        assert not torch.allclose(big.encoder(moved(150, 300))[0], mu_BKC, atol=1e-4)
        big.encoder.pyramid_reads[0].zero_init_()  # no level reads: only the pooled first 150 matter
        torch.testing.assert_close(big.encoder(moved(150, 600))[0], big.encoder(s_BN6)[0], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="reads 600 surface points; got 300"):
        big.encoder(s_BN6[:, :300])


def test_pooling_rounds_need_the_triplane_latent():
    with pytest.raises(ValueError, match="latent_planes=3"):
        get_config("vat-tiny", pool_rounds=1)
    with pytest.raises(ValueError, match="fine_res"):
        get_config("vat-tiny", fine_res=64)
    with pytest.raises(ValueError, match="fine_res"):
        get_config("vat-tiny", **TINY_TP, fine_res=48)  # not scatter_res times a power of two


def test_plane_refinement_joins_the_model_id_only_when_set():
    assert "plane_refine" not in get_config("vat-tp2").decode_json()  # the shipped ids stay valid
    assert "plane_refine" in get_config("vat-tp2", plane_refine=1).decode_json()
    assert "fine_res" not in get_config("vat-tp2", fine_res=64).decode_json()  # encoder only
    assert "pyramid" not in get_config("vat-tp2", pyramid=(8192,)).decode_json()
    with pytest.raises(ValueError, match="pyramid levels"):
        get_config("vat-tp2", pyramid=(0,))


def test_growth_refuses_what_it_cannot_grow():
    small, big = tiny_tp(0), tiny_tp(0, enc_depth=2)
    with pytest.raises(ValueError, match="--grow"):
        load_weights(big, small.state_dict(), grow=False)  # more parts than the checkpoint: only with grow
    with pytest.raises(ValueError, match="lacks"):
        load_weights(small, big.state_dict(), grow=True)  # the checkpoint is the bigger one
    state = {k: v for k, v in big.state_dict().items() if not k.startswith("encoder.blocks.1.attn.")}
    with pytest.raises(ValueError, match="partly"):
        load_weights(tiny_tp(0, enc_depth=2), state, grow=True)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_weights(tiny_tp(0, width=32), small.state_dict(), grow=True)


def test_grown_training_run_starts_where_its_init_ended_and_learns(tmp_path):
    write_cache(tmp_path / "cache")
    overrides = json.dumps(TINY_TP)
    train(tiny_args(tmp_path, out=str(tmp_path / "small"), overrides=overrides, steps=20, stage1_steps=10))
    init = str(tmp_path / "small" / "last.safetensors")
    grown = json.dumps({**TINY_TP, "enc_depth": 2, "pool_rounds": 1, "pyramid": [1024]})
    args = tiny_args(
        tmp_path, out=str(tmp_path / "big"), overrides=grown, steps=20, stage1_steps=0, init=init
    )
    with pytest.raises(ValueError, match="--grow"):  # a config with more parts needs --grow
        train(args)
    train(dataclasses.replace(args, grow=True))
    tensors, _ = read_checkpoint(tmp_path / "big" / "last.safetensors")
    model = split_state(tensors, "model.")
    # The new parts started at zero and training moved them.
    assert model["encoder.blocks.1.mlp.fc2.weight"].abs().sum() > 0
    assert model["encoder.pool.rounds.0.mlp.2.weight"].abs().sum() > 0
    assert model["encoder.pyramid_reads.0.attn.out.weight"].abs().sum() > 0


def test_a_pyramid_needs_distinct_points_to_train_on_and_encodes_a_mesh(tmp_path):
    import trimesh

    from vatcodec import codec
    from vatcodec.codec.bitstream import header_info

    write_cache(tmp_path / "cache")  # 4096 surface points a shape
    args = tiny_args(tmp_path, overrides=json.dumps({**TINY_TP, "pyramid": [8192]}), steps=2, stage1_steps=1)
    with pytest.raises(ValueError, match="reads 8192 surface points a shape; the cache holds 4096"):
        train(args)
    net = tiny_tp(
        0, pyramid=(1024,)
    )  # the codec samples input_points, or the encoder would refuse the surface
    data = codec.encode(trimesh.creation.box((1.0, 2.0, 0.5)), model=net, coder="raw")
    assert header_info(data)["tokens_present"] == sum(net.cfg.schedule)
