"""Per-shape latents fitted through a frozen decoder: targets for training the encoder by regression.

    python -m training.fit_latents CKPT ~/.cache/vatcodec/cache --out ~/.cache/vatcodec/fits/vat-tp2-s20 \
        [--split train] [--steps 20] [--lr 0.02] [--limit N] [--chunk 32] [--threads 1]

Session 8 measured that a latent fitted to each shape through the shipped decoder decodes validation meshes to F
0.81 where the encoder's own latent gives 0.66 (`benchmarks/latent_fit.py`): the encoder, not the decoder, holds
the tokenizer back. This tool writes those fitted latents for a whole split (the issue's auto-decoder warm-up,
with the decoder already trained), so that an encoder can be trained to regress them. The fit starts at the
encoder's mu of the unaugmented shape and moves it with Adam to lower the BCE of the shape's own labelled queries
(8192 fresh ones per step). Shapes go into chunk files `fit-00000.safetensors`, ... (names in the metadata), each
written atomically, so an interrupted run resumes at the first missing chunk. Never run it on the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from training.data import BatchSampler, ShapeCache
from vatcodec.fileio import atomic_output
from vatcodec.model.checkpoint import load_model


def frozen_setup(ckpt: str, data: str, split: str, threads: int):
    """(frozen model, the split's cache, an unaugmented one-shape sampler of 8192 queries) for fitting latents."""
    torch.set_num_threads(threads)
    net = load_model(ckpt).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    cache = ShapeCache.load(data, split)
    return net, cache, BatchSampler(cache, 1, net.cfg.input_points, 8192, augment=False)


def fit_latent(net, sampler: BatchSampler, i: int, steps: int, lr: float) -> dict:
    """Fits shape i's latent from the encoder's mu; returns mu, the fitted latent and the BCE before and after.

    `net`'s parameters must be frozen (requires_grad False). Seeds depend only on the shape index and the step, so
    a shape's fit is the same whichever run or chunk computes it.
    """
    batch = sampler.collate(np.array([i]), np.random.default_rng([7, i]))
    surface_1N6 = torch.cat([batch["surface_points"], batch["surface_normals"]], -1)
    with torch.no_grad():
        mu_1KC, _ = net.posterior(surface_1N6)
    z_1KC = mu_1KC.clone().requires_grad_(True)
    opt = torch.optim.Adam([z_1KC], lr=lr)
    bce = []
    for step in range(steps):
        b = sampler.collate(np.array([i]), np.random.default_rng([11, i, step]))
        logits_1M = net.decoder.query(net.decoder.planes(z_1KC), b["query_points"])
        loss = F.binary_cross_entropy_with_logits(logits_1M, b["query_occ"])
        bce.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {
        "mu": mu_1KC[0],
        "fit": z_1KC.detach()[0],
        "bce_mu": bce[0] if bce else 0.0,
        "bce_fit": bce[-1] if bce else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", default="train", choices=("train", "val"))
    # 20 steps: on 8 validation meshes their fits decode as tokens to F 0.755, 50 steps' to 0.735 (a longer walk
    # leaves what the codebook represents); benchmarks/latent_fit.py, docs/tokenizer.md "Session 9".
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--limit", type=int, default=0, help="only the first N shapes (0: all)")
    p.add_argument("--chunk", type=int, default=32, help="shapes per output file")
    p.add_argument("--threads", type=int, default=1)
    o = p.parse_args(argv)
    if o.steps < 1 or o.chunk < 1 or o.limit < 0:
        print("error: --steps and --chunk must be >= 1 and --limit >= 0", file=sys.stderr)
        return 2
    net, cache, sampler = frozen_setup(o.ckpt, o.data, o.split, o.threads)
    n = min(o.limit or len(cache), len(cache))
    o.out.mkdir(parents=True, exist_ok=True)
    info = {"ckpt": o.ckpt, "split": o.split, "steps": o.steps, "lr": o.lr, "chunk": o.chunk}
    t0, done = time.time(), 0
    for c, start in enumerate(range(0, n, o.chunk)):
        path = o.out / f"fit-{c:05d}.safetensors"
        if path.exists():
            continue
        ids = range(start, min(start + o.chunk, n))
        fits = [fit_latent(net, sampler, i, o.steps, o.lr) for i in ids]
        tensors = {k: torch.stack([f[k] for f in fits]).contiguous() for k in ("mu", "fit")}
        tensors |= {k: torch.tensor([f[k] for f in fits]) for k in ("bce_mu", "bce_fit")}
        meta = {"names": json.dumps([cache.names[i] for i in ids]), "info": json.dumps(info)}
        with atomic_output(path, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        done += len(fits)
        rate = (time.time() - t0) / done
        print(
            f"{path.name}: shapes {ids.start}-{ids.stop - 1} of {n}, BCE {tensors['bce_mu'].mean():.4f} -> "
            f"{tensors['bce_fit'].mean():.4f}, {rate:.1f} s a shape",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
