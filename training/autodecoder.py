"""Auto-decoder probe: a fresh decoder and one free latent per shape, fitted together, to rank decoder designs.

    python -m training.autodecoder --data ~/.cache/vatcodec/cache --tag ad-base --shapes 32 --steps 600
    python -m training.autodecoder --data ... --tag ad-res --overrides '{"plane_block": "res"}'

The tokenizer's quality is limited by its decoder (docs/tokenizer.md), and a from-scratch tokenizer run on
this CPU is too short to rank decoders, because two thirds of each step is the encoder. Here there is no
encoder and no quantizer: each training shape owns a latent (K, C_q) that the optimiser moves along with the
decoder (DeepSDF's auto-decoder), so a step costs the decoder alone, and what is measured is how fast a
decoder design can represent a set of shapes at all, the ceiling that an encoder can then approach.

Scores, on the fitted shapes themselves: IoU of 8192 fixed queries per shape (half uniform, half near the
surface; undilated labels), the occupied fraction, the inside logits, and the dense F-score (tau 0.01) of
`--f-shapes` of them decoded from their latents at `--f-resolution`. One row per run in `--results`.
No augmentation: a latent describes one pose of its shape.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.data import INDEX_NAME, BatchSampler, ShapeCache, evenly_spaced
from vatcodec.model.config import get_config
from vatcodec.model.tokenizer import VAT

RESULTS = Path("benchmarks/results/autodecoder.jsonl")


def _mesh_paths(data: str, names: list[str]) -> list[Path | None]:
    index = json.loads((Path(data) / INDEX_NAME).read_text())
    out = []
    for name in names:
        hit = next((Path(r) / name for r in index.get("roots", []) if (Path(r) / name).is_file()), None)
        out.append(hit)
    return out


@torch.no_grad()
def evaluate(
    net: VAT, latents_SKC: torch.Tensor, cache: ShapeCache, data: str, f_shapes: int, f_res: int
) -> dict:
    from vatcodec.codec.extract import extract_mesh
    from vatcodec.geometry.labels import occupancy_metrics
    from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
    from vatcodec.geometry.metrics import surface_metrics

    net.eval()
    sampler = BatchSampler(cache, 1, net.cfg.input_points, 8192, augment=False)
    ious, occ_pred, occ_true, inside = [], [], [], []
    for i in range(len(cache)):
        batch = sampler.collate(np.array([i]), np.random.default_rng([7, i]))
        logits_M = net.decode_latent(latents_SKC[i : i + 1])(batch["query_points"])[0]
        ious.append(occupancy_metrics(logits_M, batch["query_occ"][0])["iou"])
        uniform = slice(0, 4096)
        occ_pred.append(float((logits_M[uniform] > 0).float().mean()))
        occ_true.append(float((batch["query_occ"][0][uniform] > 0.5).float().mean()))
        inside.append(logits_M[batch["query_occ"][0] > 0.5])
    inside_M = torch.cat(inside)
    take = np.linspace(0, len(cache) - 1, min(f_shapes, len(cache))).round().astype(int)
    fscores = []
    for i, path in zip(take, _mesh_paths(data, [cache.names[j] for j in take]), strict=True):
        if path is None:
            continue
        import trimesh

        ref_unit, _ = normalize_mesh(load_mesh(path))
        v, f = extract_mesh(net.decode_latent(latents_SKC[i : i + 1]), resolution=f_res)
        pred = trimesh.Trimesh(v, f, process=False) if len(f) else None
        fscores.append(float(surface_metrics(pred, ref_unit)["fscore"]) if pred is not None else 0.0)
    net.train()
    return {
        "fit_iou": float(np.mean(ious)),
        "occ_frac_pred": float(np.mean(occ_pred)),
        "occ_frac_true": float(np.mean(occ_true)),
        "logit_inside_median": float(inside_M.median()) if len(inside_M) else None,
        "fscore_mean": float(np.mean(fscores)) if fscores else None,
        "fscore": [round(x, 4) for x in fscores],
    }


def _reference_row(a) -> None:
    """The yardstick for a probe row: an encoder + VVQ + decoder checkpoint on the shapes the probe fits."""
    from training.speedrun import decoded_fscores
    from vatcodec.model.checkpoint import load_model

    cache = evenly_spaced(ShapeCache.load(a.data, "train"), a.shapes)
    take = np.linspace(0, len(cache) - 1, min(a.f_shapes, len(cache))).round().astype(int)
    paths = [p for p in _mesh_paths(a.data, [cache.names[j] for j in take]) if p is not None]
    f = decoded_fscores(load_model(a.reference).eval(), paths, a.f_resolution)
    row = {"tag": a.tag, "reference": a.reference, "shapes": len(cache), "fscore_mean": float(np.mean(f)),
           "fscore": [round(x, 4) for x in f], "time": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with a.results.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--config", default="vat-s")
    p.add_argument("--overrides", default="{}")
    p.add_argument("--shapes", type=int, default=32, help="evenly spaced training shapes to fit")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-queries", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3, help="decoder learning rate")
    p.add_argument("--latent-lr", type=float, default=1e-2)
    p.add_argument("--latent-init", type=float, default=0.1, help="std of the initial latents")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--f-shapes", type=int, default=8)
    p.add_argument("--f-resolution", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=0, help="also score at these step intervals")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument(
        "--reference",
        default="",
        metavar="CKPT",
        help="instead of training: the F-score of a tokenizer's full token stream on the same shapes",
    )
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.reference:
        _reference_row(a)
        return
    torch.manual_seed(a.seed)
    cfg = get_config(a.config, **json.loads(a.overrides))
    net = VAT(cfg).train()
    cache = evenly_spaced(ShapeCache.load(a.data, "train"), a.shapes)
    S = len(cache)
    g = torch.Generator().manual_seed(a.seed)
    latents_SKC = torch.nn.Parameter(
        torch.randn(S, cfg.num_latents, cfg.latent_dim, generator=g) * a.latent_init
    )
    opt = torch.optim.AdamW(
        [
            {"params": list(net.decoder.parameters()), "lr": a.lr, "weight_decay": 0.01},
            {"params": [latents_SKC], "lr": a.latent_lr, "weight_decay": 0.0},
        ],
        betas=(0.9, 0.99),
    )
    base_lrs = [grp["lr"] for grp in opt.param_groups]
    sampler = BatchSampler(
        cache, a.batch_size, cfg.input_points, a.num_queries, seed=a.seed, augment=False,
        label_dilate=cfg.label_dilate, label_band=cfg.label_band,
    )  # fmt: skip
    rng = np.random.default_rng(a.seed)
    history, t0, losses = [], time.perf_counter(), []
    for step in range(a.steps):
        scale = min(1.0, (step + 1) / a.warmup) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for grp, lr in zip(opt.param_groups, base_lrs, strict=True):
            grp["lr"] = lr * scale
        ids = rng.choice(S, a.batch_size, replace=S < a.batch_size)
        batch = sampler.collate(ids, np.random.default_rng([a.seed, step]))
        planes = net.decoder.planes(latents_SKC[torch.from_numpy(ids)])
        logits_BM = net.decoder.query(planes, batch["query_points"])
        loss = F.binary_cross_entropy_with_logits(logits_BM, batch["query_occ"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.decoder.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            print(
                f"step {step} loss {np.mean(losses[-50:]):.4f} {time.perf_counter() - t0:.0f} s", flush=True
            )
        if a.eval_every and step and step % a.eval_every == 0:
            history.append(
                {
                    "step": step,
                    **evaluate(net, latents_SKC.detach(), cache, a.data, a.f_shapes, a.f_resolution),
                }
            )
            print(json.dumps(history[-1]), flush=True)
    train_s = time.perf_counter() - t0
    row = {
        "tag": a.tag, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": a.config,
        "overrides": json.loads(a.overrides), "shapes": S, "steps": a.steps, "batch_size": a.batch_size,
        "lr": a.lr, "latent_lr": a.latent_lr, "threads": a.threads, "seed": a.seed,
        "s_per_step": train_s / a.steps, "final_loss": float(np.mean(losses[-50:])),
        "decoder_params_M": round(sum(p.numel() for p in net.decoder.parameters()) / 1e6, 3),
        "history": history,
        **evaluate(net, latents_SKC.detach(), cache, a.data, a.f_shapes, a.f_resolution),
    }  # fmt: skip
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with a.results.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(
        json.dumps(
            {k: row[k] for k in ("tag", "steps", "s_per_step", "final_loss", "fit_iou", "fscore_mean")}
        )
    )


if __name__ == "__main__":
    main()
