"""Speedrun: train a tokenizer config for a fixed wall-clock budget, then score it the same way every time.

    python -m training.speedrun --data ~/.cache/vatcodec/cache --minutes 20 --tag baseline
    python -m training.speedrun --data ... --tag res-planes --overrides '{"plane_block": "res"}' --lr 2e-3

The budget becomes a step count: a few timed steps of the real model set how many steps fit, and that count sets
the learning-rate schedule (30% of it without quantization, then VVQ), so a run is reproducible from its row.
Scores: the validation split's Accuracy, IoU, Near-Surface Accuracy and CS-IoU, the occupied fraction and BCE
on uniform queries and the inside logits (IoU alone is misleading early on, see docs/tokenizer.md), and the
dense F-score of `--f-shapes` validation meshes decoded at `--f-resolution` from the full token stream. Each run
appends one row to `--results`. Rows compare only within one machine state: re-run the baseline beside the
candidates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training.data import INDEX_NAME, BatchSampler, ShapeCache, evenly_spaced
from training.tokenizer import TrainArgs, train
from vatcodec.errors import VatError
from vatcodec.model.config import get_config
from vatcodec.model.tokenizer import VAT

RESULTS = Path("benchmarks/results/speedrun.jsonl")


def steps_for_budget(a: TrainArgs, seconds: float, probe_steps: int = 4) -> tuple[int, float]:
    """(steps that fit in `seconds`, measured samples/s): times `probe_steps` steps of the run's own model."""
    cfg = get_config(a.config, **json.loads(a.overrides))
    torch.manual_seed(a.seed)
    model = VAT(cfg).train()
    model.quantize = False  # stage 1 is the cheaper stage; stage 2 adds the VQ, measured as small
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cache = evenly_spaced(ShapeCache.load(a.data, a.split), min(a.subset or 64, 64))
    sampler = BatchSampler(cache, a.batch_size, cfg.input_points, a.num_queries, seed=a.seed)
    times = []
    for i in range(probe_steps + 1):
        batch = sampler.batch(i)
        t = time.perf_counter()
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    per_step = float(np.median(times[1:]))  # the first step pays one-off allocation costs
    return max(2, int(seconds / per_step)), a.batch_size / per_step


def mesh_file(data: str | os.PathLike, name: str) -> Path | None:
    """The mesh file of a cached shape, under the first root the cache was prepared from that holds it."""
    roots = json.loads((Path(data) / INDEX_NAME).read_text()).get("roots", [])
    return next((Path(r) / name for r in roots if (Path(r) / name).is_file()), None)


def val_meshes(data: str | os.PathLike, n: int, split: str = "val") -> list[Path]:
    """Mesh files of n evenly spaced shapes of a cache split (found under the roots it was prepared from)."""
    index = json.loads((Path(data) / INDEX_NAME).read_text())
    names = [s["name"] for s in index["shapes"] if s["split"] == split]
    take = np.linspace(0, len(names) - 1, min(n, len(names))).round().astype(int) if names else []
    return [p for p in (mesh_file(data, names[i]) for i in take) if p is not None]


ISO_CANDIDATES = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.1)


@torch.no_grad()
def choose_iso(net: VAT, data: str | os.PathLike, split: str = "val") -> tuple[float, dict[float, float]]:
    """The iso logit with the best mean IoU (full token stream, undilated labels) on a split, and every score.

    Dilated labels put the true surface at logit(0.5 + 0.5 * dilate / band) only once the logits have reached
    their final scale; early in training they sit lower, so the level is measured, not derived.
    """
    from vatcodec.geometry.labels import occupancy_metrics

    cache = ShapeCache.load(data, split)
    sampler = BatchSampler(cache, 1, net.cfg.input_points, 8192, augment=False)
    scores = {iso: 0.0 for iso in ISO_CANDIDATES}
    for i in range(len(cache)):
        batch = sampler.collate(np.array([i]), np.random.default_rng([7, i]))
        surface = torch.cat([batch["surface_points"], batch["surface_normals"]], -1)
        raw_M = net.decode(net.encode(surface))(batch["query_points"])[0] + net.cfg.iso_logit
        for iso in ISO_CANDIDATES:
            scores[iso] += occupancy_metrics(raw_M - iso, batch["query_occ"][0])["iou"] / len(cache)
    return max(scores, key=scores.get), scores


def decoded_fscores(net: VAT, meshes: list[Path], resolution: int) -> list[float]:
    """F-score (tau 0.01) of each mesh's full token stream decoded at `resolution`; an empty decode scores 0."""
    from vatcodec.codec import decode, encode
    from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
    from vatcodec.geometry.metrics import decoded_surface_metrics

    out = []
    for path in meshes:
        ref_unit, norm = normalize_mesh(load_mesh(path))
        data = encode(load_mesh(path), model=net, coder="raw")
        try:
            mesh = decode(data, model=net, resolution=resolution)
        except VatError:
            mesh = None
        out.append(decoded_surface_metrics(mesh, ref_unit, norm)["fscore"])
    return out


def score_checkpoint(ckpt, data: str, f_shapes: int = 8, f_resolution: int = 128) -> dict:
    """The iso level chosen on validation IoU, and the decoded F-scores at the model's own iso and at that one.

    `ckpt` is a checkpoint path or a loaded VAT (whose config this leaves as it found it).
    """
    from vatcodec.model.checkpoint import load_model

    net = load_model(ckpt).eval() if isinstance(ckpt, (str, os.PathLike)) else ckpt
    cfg0 = net.cfg
    own = net.cfg.iso_logit
    iso, iso_scores = choose_iso(net, data)
    meshes = val_meshes(data, f_shapes)
    f_own = decoded_fscores(net, meshes, f_resolution)
    out = {
        "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
        "iso_logit": iso,
        "val_iou_by_iso": {str(k): round(v, 4) for k, v in iso_scores.items()},
        "val_fscore_own_iso": float(np.mean(f_own)) if f_own else None,
        "val_fscore_own_iso_all": [round(f, 4) for f in f_own],
    }
    f = f_own
    if iso != own:
        net.cfg = dataclasses.replace(net.cfg, iso_logit=iso)
        f = decoded_fscores(net, meshes, f_resolution)
    net.cfg = cfg0
    out.update(
        val_fscore_mean=float(np.mean(f)) if f else None,
        val_fscore=[round(x, 4) for x in f],
        val_fscore_empty=int(sum(x == 0.0 for x in f)),
    )
    return out


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def speedrun(
    a: TrainArgs,
    minutes: float,
    tag: str,
    results: Path = RESULTS,
    f_shapes: int = 8,
    f_resolution: int = 128,
    stage1_frac: float = 0.3,
    steps: int = 0,
) -> dict:
    """Trains `a` for the budget (or exactly `steps` steps), scores it and appends the row to `results`."""
    if a.threads:
        torch.set_num_threads(a.threads)
    load_before = os.getloadavg()
    sps_probe = None
    if not steps:
        steps, sps_probe = steps_for_budget(a, minutes * 60.0)
    a = dataclasses.replace(a, steps=steps, stage1_steps=round(stage1_frac * steps), val_every=0)
    t0 = time.time()
    metrics = train(a)
    train_s = time.time() - t0
    t1 = time.time()
    scores = score_checkpoint(Path(a.out) / "last.safetensors", a.data, f_shapes, f_resolution)
    row = {
        "tag": tag,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": _commit(),
        "config": a.config,
        "overrides": json.loads(a.overrides),
        "lr": a.lr,
        "init": a.init,
        "batch_size": a.batch_size,
        "subset": a.subset,
        "threads": a.threads,
        "seed": a.seed,
        "minutes": minutes,
        "steps": steps,
        "stage1_steps": a.stage1_steps,
        "samples_per_s": steps * a.batch_size / train_s,
        "samples_per_s_probe": sps_probe,
        "train_s": round(train_s, 1),
        "fscore_s": round(time.time() - t1, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        **{k: v for k, v in metrics.items() if k != "rank_weight_digests"},
        **scores,
        "out": str(a.out),
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="prepared cache (training.prepare)")
    p.add_argument("--tag", required=True, help="name of this run in the results")
    p.add_argument("--out", default="", help="run folder (default ~/.cache/vatcodec/speedruns/TAG)")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead of a budget")
    p.add_argument("--config", default="vat-s")
    p.add_argument("--overrides", default="{}", help="JSON of config fields to replace")
    p.add_argument("--lr", type=float, default=TrainArgs.lr)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=TrainArgs.batch_size)
    p.add_argument("--num-queries", type=int, default=TrainArgs.num_queries)
    p.add_argument("--subset", type=int, default=0, help="evenly spaced training shapes (0 = all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--init", default="", help="warm start from this checkpoint's weights (a release file works)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage1-frac", type=float, default=0.3, help="share of the steps without quantization")
    p.add_argument("--f-shapes", type=int, default=8)
    p.add_argument("--f-resolution", type=int, default=128)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--eval-only", default="", metavar="CKPT", help="score this checkpoint without training")
    o = p.parse_args(argv)
    if o.eval_only:
        from training.tokenizer import evaluate
        from vatcodec.model.checkpoint import load_model

        torch.set_num_threads(o.threads)
        row = {
            "tag": o.tag,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "commit": _commit(),
            "eval_only": o.eval_only,
        }
        net = load_model(o.eval_only).eval()
        row.update(evaluate(net, ShapeCache.load(o.data, "val"), 64, torch.device("cpu")))
        row.update(score_checkpoint(net, o.data, o.f_shapes, o.f_resolution))
        with open(o.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("iso_logit", "val_fscore_own_iso", "val_fscore_mean")}))
        return 0
    if o.minutes <= 0 and not o.steps:
        print("error: --minutes must be > 0 (or give --steps)", file=sys.stderr)
        return 2
    out = o.out or str(Path.home() / ".cache" / "vatcodec" / "speedruns" / o.tag)
    if Path(out, "last.safetensors").exists():
        print(f"error: {out} already holds a run; pick another --tag or --out", file=sys.stderr)
        return 2
    try:
        json.loads(o.overrides)
        get_config(o.config, **json.loads(o.overrides))
        a = TrainArgs(
            data=o.data,
            out=out,
            config=o.config,
            overrides=o.overrides,
            lr=o.lr,
            warmup=o.warmup,
            batch_size=o.batch_size,
            num_queries=o.num_queries,
            subset=o.subset,
            threads=o.threads,
            seed=o.seed,
            init=o.init,
            ckpt_every=10**9,
        )
        row = speedrun(a, o.minutes, o.tag, o.results, o.f_shapes, o.f_resolution, o.stage1_frac, o.steps)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = ("steps", "samples_per_s", "val_iou", "val_cs_iou", "val_occ_frac_pred", "val_fscore_mean")
    print(json.dumps({k: row.get(k) for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
