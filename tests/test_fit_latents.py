"""training.fit_latents: fitted latents lower the BCE, chunks resume, and a shape's fit does not depend on its chunk."""

import json

import torch
from conftest import tiny_model
from safetensors import safe_open
from safetensors.torch import load_file
from test_training import write_cache

from training.fit_latents import main
from vatcodec.model.checkpoint import save_checkpoint


def test_fits_lower_the_bce_resume_by_chunk_and_are_reproducible(tmp_path, capsys):
    write_cache(tmp_path / "cache", n_shapes=3)
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    common = [str(ckpt), str(tmp_path / "cache"), "--steps", "30", "--lr", "0.05"]
    assert main([*common, "--out", str(tmp_path / "a"), "--chunk", "2"]) == 0
    first, second = tmp_path / "a" / "fit-00000.safetensors", tmp_path / "a" / "fit-00001.safetensors"
    a0, a1 = load_file(first), load_file(second)
    assert a0["fit"].shape[0] == 2 and a1["fit"].shape[0] == 1
    assert a0["fit"].shape == a0["mu"].shape
    with safe_open(first, "pt") as f:
        assert json.loads(f.metadata()["names"]) == ["torus0", "torus1"]
    bce_mu = torch.cat([a0["bce_mu"], a1["bce_mu"]])
    bce_fit = torch.cat([a0["bce_fit"], a1["bce_fit"]])
    # An untrained decoder barely responds to its latent (0.6995 -> 0.6961 here), but every fit must go down.
    assert (bce_fit < bce_mu - 1e-3).all(), (bce_mu, bce_fit)
    # A rerun keeps finished chunks; a lost chunk is recomputed to the same values.
    stamp = first.stat().st_mtime_ns
    second.unlink()
    assert main([*common, "--out", str(tmp_path / "a"), "--chunk", "2"]) == 0
    assert first.stat().st_mtime_ns == stamp
    assert torch.equal(load_file(second)["fit"], a1["fit"])
    # Other chunking, same fits.
    assert main([*common, "--out", str(tmp_path / "b"), "--chunk", "3"]) == 0
    b0 = load_file(tmp_path / "b" / "fit-00000.safetensors")
    assert torch.equal(b0["fit"], torch.cat([a0["fit"], a1["fit"]]))


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert main(["x.safetensors", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_encoder_learns_to_regress_fitted_latents_with_the_decoder_frozen(tmp_path):
    from test_training import tiny_args

    from training.tokenizer import train
    from vatcodec.model.checkpoint import read_checkpoint, split_state

    write_cache(tmp_path / "cache", n_shapes=3)
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    assert main([str(ckpt), str(tmp_path / "cache"), "--out", str(tmp_path / "fits"), "--steps", "30"]) == 0
    args = tiny_args(
        tmp_path,
        init=str(ckpt),
        targets=str(tmp_path / "fits"),
        w_target=100.0,
        freeze="decoder,vq",
        stage1_steps=0,
        steps=60,
        log_every=5,
        threads=1,
    )
    train(args)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    target_loss = [r["loss_target"] for r in rows if "loss_target" in r]
    # The tiny encoder's mu starts far from the fits; learning must close most of the distance.
    assert target_loss[-1] < 0.3 * target_loss[0], target_loss
    before = split_state(read_checkpoint(ckpt)[0], "model.")
    after = split_state(read_checkpoint(tmp_path / "run" / "last.safetensors")[0], "model.")
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same if k.startswith(("decoder.", "vq.")) else True, k
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))


def test_targets_need_unaugmented_batches_and_every_shape(tmp_path):
    import pytest
    from test_training import tiny_args

    from training.targets import load_targets
    from training.tokenizer import train

    write_cache(tmp_path / "cache", n_shapes=3)
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    fits = tmp_path / "fits"
    assert main([str(ckpt), str(tmp_path / "cache"), "--out", str(fits), "--steps", "1", "--limit", "2"]) == 0
    with pytest.raises(ValueError, match="no-augment"):
        train(tiny_args(tmp_path, targets=str(fits), augment=True))
    with pytest.raises(ValueError, match="1 of 3 training shapes have no fitted latent"):
        load_targets(fits, ["torus0", "torus1", "torus2"])
    chunk = load_file(fits / "fit-00000.safetensors")["fit"]
    assert torch.equal(load_targets(fits, ["torus1", "torus0"]), chunk[[1, 0]])  # by name, in the asked order
    with pytest.raises(ValueError, match="this model's latent is"):
        load_targets(fits, ["torus0"], (1, 1))
    with pytest.raises(ValueError, match="cannot both be frozen"):
        train(tiny_args(tmp_path, freeze="encoder,decoder"))
    with pytest.raises(ValueError, match="unknown part"):
        train(tiny_args(tmp_path, freeze="planes"))


def test_frozen_parts_start_from_a_training_runs_ema_and_stay_there(tmp_path):
    from test_training import tiny_args

    from training.tokenizer import train
    from vatcodec.model.checkpoint import read_checkpoint, split_state

    write_cache(tmp_path / "cache", n_shapes=2)
    train(tiny_args(tmp_path, out=str(tmp_path / "a"), steps=6, stage1_steps=0, ckpt_every=6, threads=1))
    init = split_state(read_checkpoint(tmp_path / "a" / "last.safetensors")[0], "ema.")
    train(
        tiny_args(
            tmp_path,
            out=str(tmp_path / "b"),
            init=str(tmp_path / "a" / "last.safetensors"),
            freeze="decoder",
            steps=4,
            stage1_steps=0,
            ckpt_every=4,
            threads=1,
        )
    )
    tensors = read_checkpoint(tmp_path / "b" / "last.safetensors")[0]
    for prefix in ("model.", "ema."):
        got = split_state(tensors, prefix)
        # fit_latents and the codec decode with the EMA's decoder: that one is the frozen one, in both copies.
        assert all(torch.equal(got[k], init[k]) for k in init if k.startswith("decoder.")), prefix
