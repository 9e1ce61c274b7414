"""Decoder feedback in the encoder (`refiner.py`): grown as the identity, reads the decoder, learns, keeps the id."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from tests.test_growth import surface, tiny_tp
from tests.test_training import tiny_args, write_cache
from tests.test_triplane_latent import TINY_TP
from training.checkpointing import load_weights
from training.tokenizer import train
from vatcodec.model.checkpoint import read_checkpoint, split_state
from vatcodec.model.config import get_config


def trained_looking(seed: int):
    net = tiny_tp(seed)
    with torch.no_grad():  # no zero layers that would hide a mistake
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_a_grown_refiner_starts_as_the_identity_and_only_its_output_is_zero():
    small = trained_looking(0)
    big = tiny_tp(1, feedback_rounds=2)
    new = load_weights(big, small.state_dict(), grow=True)
    assert new and all(k.startswith("refiner.") for k in new)
    s = surface(3)
    with torch.no_grad():
        torch.testing.assert_close(big.posterior(s)[0], small.encoder(s)[0], rtol=0, atol=0)
    assert [i.tolist() for i in big.encode(s)] == [i.tolist() for i in small.encode(s)]
    # Its blocks keep their random weights (the zero output layer alone makes it the identity), so it learns fast.
    assert big.refiner.read.attn.out.weight.abs().sum() > 0
    assert big.refiner.out.weight.abs().sum() == 0


def test_the_correction_depends_on_what_the_decoder_makes_of_the_latent():
    net = trained_looking(0)
    big = tiny_tp(1, feedback_rounds=1)
    load_weights(big, net.state_dict(), grow=True)
    with torch.no_grad():
        big.refiner.out.weight.normal_(0, 0.1)
    s = surface(3)
    with torch.no_grad():
        mu_BKC = big.posterior(s)[0]
        for p in big.decoder.parameters():  # another decoder: the feedback differs, so must the latent
            p.add_(0.2 * torch.randn_like(p))
        assert not torch.allclose(big.posterior(s)[0], mu_BKC, atol=1e-4)
        torch.testing.assert_close(
            big.encoder(s)[0], net.encoder(s)[0], rtol=0, atol=0
        )  # the encoder's is as it was


def test_the_refiner_alone_learns_to_fit_a_shape_through_frozen_parts():
    big = tiny_tp(1, feedback_rounds=1)
    load_weights(big, trained_looking(0).state_dict(), grow=True)
    frozen = {n: p.clone() for n, p in big.named_parameters() if not n.startswith("refiner.")}
    for n, p in big.named_parameters():
        p.requires_grad_(n.startswith("refiner."))
    big.eval()
    s = surface(5)[:1]
    queries_1M3 = torch.rand(1, 2000, 3, generator=torch.Generator().manual_seed(6)) - 0.5
    occ_1M = (queries_1M3.norm(dim=-1) < 0.3).float()  # a ball, which the random decoder does not draw

    def loss(zhat_1KC: torch.Tensor) -> torch.Tensor:
        logits_1M = big.decoder.query(big.decoder.planes(zhat_1KC), queries_1M3)
        return F.binary_cross_entropy_with_logits(logits_1M, occ_1M)

    def fit(params, latent, lr) -> float:
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(60):
            opt.zero_grad()
            loss(latent()).backward()
            opt.step()
        return loss(latent()).item()

    start = loss(big.posterior(s)[0]).item()
    # What this decoder can draw: a free latent fitted to the ball from the encoder's, as codec effort 1 does.
    z_1KC = big.encoder(s)[0].detach().clone().requires_grad_(True)
    free = fit([z_1KC], lambda: z_1KC, 1e-2)
    assert free < start - 0.02
    learned = fit([p for p in big.parameters() if p.requires_grad], lambda: big.posterior(s)[0], 3e-3)
    assert learned < start - 0.75 * (
        start - free
    )  # the refiner's weights reach most of what the free latent does
    for n, p in big.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n


def test_feedback_is_encoder_only_and_needs_the_triplane_latent():
    assert (
        "feedback" not in get_config("vat-tp2", feedback_rounds=1).decode_json()
    )  # files keep their model id
    with pytest.raises(ValueError, match="latent_planes=3"):
        get_config("vat-tiny", feedback_rounds=1)


def test_a_training_run_may_train_the_refiner_alone(tmp_path):
    write_cache(tmp_path / "cache")
    train(
        tiny_args(
            tmp_path, out=str(tmp_path / "small"), overrides=json.dumps(TINY_TP), steps=20, stage1_steps=10
        )
    )
    init = str(tmp_path / "small" / "last.safetensors")
    args = tiny_args(
        tmp_path,
        out=str(tmp_path / "fb"),
        overrides=json.dumps({**TINY_TP, "feedback_rounds": 1}),
        steps=10,
        stage1_steps=0,
        init=init,
        grow=True,
        freeze="encoder,decoder,vq",
    )
    with pytest.raises(ValueError, match="nothing would train"):  # without a refiner nothing is left to train
        train(dataclasses.replace(args, overrides=json.dumps(TINY_TP), grow=False))
    train(args)
    before = split_state(read_checkpoint(init)[0], "ema.")
    after = split_state(read_checkpoint(tmp_path / "fb" / "last.safetensors")[0], "model.")
    assert after["refiner.out.weight"].abs().sum() > 0
    for k, v in before.items():
        assert torch.equal(after[k], v), k
