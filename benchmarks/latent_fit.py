"""The decoder's ceiling: decoded F from the encoder's mu against a latent fitted to each shape through the decoder.

    PYTHONPATH=. python benchmarks/latent_fit.py CKPT ~/.cache/vatcodec/cache [--split val] [--n 8] [--steps 200] \
        >> benchmarks/results/latent_fit.jsonl

For each of n evenly spaced shapes of a cache split, the continuous latent starts at the encoder's mu and Adam
moves it (decoder frozen) to lower the BCE of the shape's own labelled queries. If the fitted latents decode far
better than mu, the encoder (amortisation) is what holds the tokenizer back; if not, the decoder is. A fitted
latent is not quantized, so it bounds what effort 1-3 can reach. Never run it on the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from benchmarks.bottleneck import fscore_of
from training.fit_latents import fit_latent, frozen_setup
from training.speedrun import mesh_file
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("data")
    p.add_argument("--split", default="val", choices=("val", "train"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    o = p.parse_args(argv)
    net, cache, sampler = frozen_setup(o.ckpt, o.data, o.split, o.threads)
    t0 = time.time()
    f_mu, f_fit, f_tok, bce_mu, bce_fit = [], [], [], [], []
    for i in np.linspace(0, len(cache) - 1, min(o.n, len(cache))).round().astype(int):
        path = mesh_file(o.data, cache.names[i])
        ref_unit, _ = normalize_mesh(load_mesh(path))
        fit = fit_latent(net, sampler, i, o.steps, o.lr)
        mu_1KC, z_1KC = fit["mu"][None], fit["fit"][None]
        bce_mu.append(fit["bce_mu"])
        bce_fit.append(fit["bce_fit"])
        with torch.no_grad():
            f_mu.append(fscore_of(net.decode_latent(mu_1KC), ref_unit, o.resolution))
            f_fit.append(fscore_of(net.decode_latent(z_1KC), ref_unit, o.resolution))
            # What a file can carry: the fitted latent quantized to tokens, as `vatcodec encode` would.
            f_tok.append(fscore_of(net.decode(net.vq.encode(z_1KC)), ref_unit, o.resolution))
        print(
            f"{cache.names[i]}: F {f_mu[-1]:.3f} -> {f_fit[-1]:.3f} (as tokens {f_tok[-1]:.3f})",
            file=sys.stderr,
            flush=True,
        )
    row = {
        "ckpt": o.ckpt,
        "split": o.split,
        "meshes": len(f_mu),
        "steps": o.steps,
        "lr": o.lr,
        "seconds": round(time.time() - t0, 1),
        "f_mu": round(float(np.mean(f_mu)), 4),
        "f_fit": round(float(np.mean(f_fit)), 4),
        "f_fit_tokens": round(float(np.mean(f_tok)), 4),
        "bce_mu": round(float(np.mean(bce_mu)), 4),
        "bce_fit": round(float(np.mean(bce_fit)), 4),
        "all_f_mu": [round(x, 3) for x in f_mu],
        "all_f_fit": [round(x, 3) for x in f_fit],
        "all_f_fit_tokens": [round(x, 3) for x in f_tok],
    }
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
