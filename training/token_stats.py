"""Entropy tables for the range coder: count a model's tokens on the training split and store tables with it.

python -m training.token_stats --checkpoint runs/vat-s/last.safetensors --data data/cache --out vat-s-tables.safetensors

Each training shape is encoded as the codec encodes a mesh (the model's EMA weights, `num_points` area-weighted
surface points with normals, here drawn from the cached samples), and the indices are counted per scale. A table
row is proportional to `count + alpha`; the pseudo-count alpha of each scale is the one of ALPHA_GRID that codes
the validation split in the fewest bits (1 when there is no validation split). The output is the input
checkpoint plus the int32 tensor `entropy.freq_SK`; its weights and model id are unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from training.data import ShapeCache, check_pyramid_points
from vatcodec.codec.bitstream import index_bits_for
from vatcodec.codec.entropy import build_table, build_tables, code_length_bits
from vatcodec.model.checkpoint import add_tables, load_model

ALPHA_GRID = tuple(2.0**e for e in range(-8, 3))  # 1/256 .. 4


def token_counts(net, cache: ShapeCache, batch_size: int = 16, seed: int = 0) -> np.ndarray:
    """How often each code is chosen at each scale over the cached shapes: (scales, codebook) int64."""
    cfg = net.cfg
    counts_SK = np.zeros((len(cfg.schedule), cfg.codebook_size), dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_surface = cache.surface_points.shape[1]
    check_pyramid_points(cache, cfg)
    for start in range(0, len(cache), batch_size):
        rows = []
        for i in range(start, min(start + batch_size, len(cache))):
            pick = rng.choice(n_surface, cfg.input_points, replace=n_surface < cfg.input_points)
            rows.append(
                np.concatenate([cache.surface_points[i, pick], cache.surface_normals[i, pick]], axis=1)
            )
        surface_BN6 = torch.from_numpy(np.stack(rows).astype(np.float32))
        with torch.inference_mode():
            indices = net.encode(surface_BN6)  # per scale (B, L_s)
        for s, idx_BL in enumerate(indices):
            counts_SK[s] += np.bincount(idx_BL.reshape(-1).numpy(), minlength=cfg.codebook_size)
    return counts_SK


def choose_alphas(train_SK: np.ndarray, val_SK: np.ndarray | None, grid=ALPHA_GRID) -> list[float]:
    """Per scale, the pseudo-count whose table codes the validation tokens in the fewest bits."""
    alphas = []
    for s, train_K in enumerate(train_SK):
        if val_SK is None or val_SK[s].sum() == 0:
            alphas.append(1.0)
            continue
        bits = [code_length_bits(val_SK[s], build_table(train_K, a)) for a in grid]
        alphas.append(float(grid[int(np.argmin(bits))]))  # argmin: ties go to the smaller alpha
    return alphas


def _bits_per_token(counts_SK: np.ndarray, freq_SK: np.ndarray) -> list[float]:
    return [
        round(code_length_bits(c, f) / max(1, int(c.sum())), 3)
        for c, f in zip(counts_SK, freq_SK, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="model checkpoint (safetensors)")
    p.add_argument("--data", required=True, help="prepared cache (training.prepare)")
    p.add_argument("--out", required=True, help="where to write the checkpoint with tables")
    p.add_argument("--split", default="train", help="split whose tokens are counted")
    p.add_argument("--val-split", default="val", help="split that chooses the smoothing ('' for alpha = 1)")
    p.add_argument("--alpha", type=float, default=None, help="one fixed pseudo-count instead of choosing")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the surface point subsets")
    a = p.parse_args(argv)

    net = load_model(a.checkpoint)
    train = ShapeCache.load(a.data, a.split)
    train_SK = token_counts(net, train, a.batch_size, a.seed)
    val_SK, n_val = None, 0
    if a.val_split and a.alpha is None:
        try:
            val = ShapeCache.load(a.data, a.val_split)
        except ValueError:  # no shapes in that split
            val = None
        if val is not None:
            val_SK, n_val = token_counts(net, val, a.batch_size, a.seed), len(val)
    alphas = [a.alpha] * len(train_SK) if a.alpha is not None else choose_alphas(train_SK, val_SK)
    freq_SK = build_tables(train_SK, alphas)
    info = {
        "split": a.split,
        "shapes": len(train),
        "val_shapes": n_val,
        "alphas": alphas,
        "seed": a.seed,
        "raw_bits_per_token": index_bits_for(net.cfg.codebook_size),
        "codes_used": [int((c > 0).sum()) for c in train_SK],
        "train_bits_per_token": _bits_per_token(train_SK, freq_SK),
    }
    if val_SK is not None:
        info["val_bits_per_token"] = _bits_per_token(val_SK, freq_SK)
    ident = add_tables(a.checkpoint, a.out, freq_SK, info)
    print(json.dumps({"out": a.out, "model_id": net.model_id.hex(), "range_model_id": ident.hex(), **info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
