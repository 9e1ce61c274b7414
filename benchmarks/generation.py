"""Image-to-shape generation against retrieval: F-score after ICP on held-out renders, sampling time and memory.

PYTHONPATH=. python benchmarks/generation.py --eval-data data/gen-test --eval-root <corpus>/katorlegaz \
    --train-data data/gen --train-root <corpus> --out benchmarks/results/generation [--split test] \
    [--settings "cfg=1,t=0.7;cfg=3,t=1"] [--view 1] [--limit N] [--generator CKPT] [--threads 2]

For each held-out shape, one prepared render (view --view of the gen_data orbit) conditions:
  - gen[...]: the generator, once per sampling setting (seed 0), decoded at --resolution;
  - retrieval-mesh: the training mesh whose render (any of its views) is nearest to the query render in the
    generator's own image-embedding space (cosine), as the original mesh;
  - retrieval-tokens: that training shape's token map decoded by the tokenizer (retrieval behind the same
    tokenizer bottleneck as the generator);
  - tokenizer: the held-out shape's own token map decoded (what a perfect generator of these tokens would reach).
Each prediction is aligned to the reference by ICP (rigid, from the identity, on 4096 surface points against 8192
reference points; both shapes in the unit-cube frame; kept only when it lowers the Chamfer distance) and scored
with `vatcodec.geometry.metrics.surface_metrics` (dense F-score at tau 0.01, Chamfer). Rows go to
OUT/rows.jsonl (a rerun
resumes), means to OUT/summary.csv and OUT/results.json. Sampling times here share the CPU with decoding and
scoring; benchmarks/generation_speed.py measures speed and memory alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

from training.gen_data import load_parts
from vatcodec import codec
from vatcodec.codec.extract import extract_mesh
from vatcodec.generation.checkpoint import load_generator
from vatcodec.generation.generate import default_generator_path
from vatcodec.generation.image_input import to_tensor
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import surface_metrics


def parse_settings(text: str) -> list[dict]:
    """'cfg=1,t=0.7,k=0;cfg=3,t=1' -> [{"cfg": 1.0, "t": 0.7, "k": 0}, ...]."""
    out = []
    for part in filter(None, text.split(";")):
        d = {"cfg": 0.0, "t": 1.0, "k": 0, "p": 1.0}
        for kv in part.split(","):
            k, v = kv.split("=")
            d[k.strip()] = float(v) if k.strip() != "k" else int(v)
        out.append(d)
    return out


def setting_name(s: dict) -> str:
    return f"gen[cfg={s['cfg']:g},t={s['t']:g},k={s['k']},p={s['p']:g}]"


def icp_align(pred: trimesh.Trimesh, ref: trimesh.Trimesh, seed: int = 0) -> trimesh.Trimesh:
    """`pred` moved by rigid ICP onto `ref` (point-to-point, from the identity)."""
    rng = np.random.default_rng(seed)
    src_N3 = trimesh.sample.sample_surface(pred, 4096, seed=int(rng.integers(2**31)))[0]
    dst_M3 = trimesh.sample.sample_surface(ref, 8192, seed=int(rng.integers(2**31)))[0]
    matrix_44, _, _ = trimesh.registration.icp(
        src_N3, dst_M3, max_iterations=30, reflection=False, scale=False
    )
    out = pred.copy()
    out.apply_transform(matrix_44)
    return out


def score(pred: trimesh.Trimesh | None, ref_unit: trimesh.Trimesh) -> dict:
    """Metrics after ICP, or without it when ICP made the Chamfer distance worse (it can slide into a bad minimum)."""
    if pred is None or len(pred.faces) == 0:
        return {"fscore": 0.0, "fscore_noicp": 0.0, "chamfer": None, "icp_used": False}
    raw = surface_metrics(pred, ref_unit, n_query=10_000, n_ref=100_000)
    icp = surface_metrics(icp_align(pred, ref_unit), ref_unit, n_query=10_000, n_ref=100_000)
    best = icp if icp["chamfer"] <= raw["chamfer"] else raw
    return {
        "fscore": float(best["fscore"]),
        "fscore_noicp": float(raw["fscore"]),
        "chamfer": float(best["chamfer"]),
        "icp_used": best is icp,
    }


def decode_tokens(net, tokens_L: np.ndarray, resolution: int) -> trimesh.Trimesh | None:
    """A token map decoded in the unit cube (None when the shape is empty)."""
    counts = list(net.cfg.schedule)
    indices = [torch.from_numpy(t)[None] for t in np.split(tokens_L.astype(np.int64), np.cumsum(counts)[:-1])]
    with torch.inference_mode():
        v_N3, f_F3 = extract_mesh(net.decode(indices), resolution=resolution)
    return trimesh.Trimesh(v_N3, f_F3, process=False) if len(f_F3) else None


@torch.no_grad()
def embed_all(gen, images_NVHW3: np.ndarray, batch: int = 64) -> torch.Tensor:
    """L2-normalized image embeddings (N * V, D) of every view."""
    flat = images_NVHW3.reshape(-1, *images_NVHW3.shape[2:])
    parts = [gen.condition(to_tensor(flat[i : i + batch])) for i in range(0, len(flat), batch)]
    return torch.nn.functional.normalize(torch.cat(parts), dim=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-data", type=Path, required=True, help="gen_data folder of the held-out shapes")
    p.add_argument("--eval-root", type=Path, required=True, help="folder their names are relative to")
    p.add_argument("--split", default="test", help="which rows of --eval-data to score (test, or val)")
    p.add_argument("--train-data", type=Path, required=True, help="gen_data folder of the training shapes")
    p.add_argument("--train-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generation"))
    p.add_argument("--generator", default=str(default_generator_path()))
    p.add_argument("--settings", default="cfg=1,t=0.7")
    p.add_argument("--methods", default="gen,retrieval-mesh,retrieval-tokens,tokenizer")
    p.add_argument("--view", type=int, default=1)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    settings = parse_settings(args.settings)
    gen = load_generator(args.generator)
    net = codec.get_model()
    tok_id = bytes(codec.model_id_of(net)).hex()
    if gen.cfg.tokenizer_id != tok_id:
        raise SystemExit(
            f"the generator predicts tokens of tokenizer {gen.cfg.tokenizer_id}, not the shipped {tok_id}"
        )
    gen_id = getattr(gen, "generator_id", "")
    ev = load_parts(args.eval_data, (args.split,))
    tr = load_parts(args.train_data, ("train",))
    n = min(len(ev["names"]), args.limit or len(ev["names"]))
    train_emb = embed_all(gen, tr["images"]) if any(m.startswith("retrieval") for m in methods) else None
    V = tr["images"].shape[1]
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in cache.read_text().splitlines()] if cache.is_file() else []
    # Rows of another generator, view or resolution are not this run's: keep them in the file, leave them out here.
    rows = [
        r
        for r in rows
        if (r.get("generator_id"), r.get("view"), r.get("resolution")) == (gen_id, args.view, args.resolution)
    ]
    done = {(r["mesh"], r["method"]) for r in rows}
    sample_s: dict[str, list[float]] = {}
    with open(cache, "a") as log:
        for i in range(n):
            name = ev["names"][i]
            ref_unit, _ = normalize_mesh(load_mesh(args.eval_root / name))
            image_13HW = to_tensor(ev["images"][i, args.view][None])
            nearest = None
            todo = []
            if "gen" in methods:
                todo += [(setting_name(s), s) for s in settings]
            todo += [(m, None) for m in methods if m != "gen"]
            for method, s in todo:
                if (name, method) in done:
                    continue
                row = {"mesh": name, "method": method, "generator_id": gen_id, "view": args.view}
                row["resolution"] = args.resolution
                if s is not None:
                    rng = torch.Generator().manual_seed(0)
                    t = time.perf_counter()
                    out = gen.sample(
                        gen.condition(image_13HW), s["cfg"], s["k"], s["p"], s["t"], generator=rng
                    )
                    row["sample_s"] = time.perf_counter() - t
                    sample_s.setdefault(method, []).append(row["sample_s"])
                    pred = decode_tokens(net, torch.cat(out["indices"], 1)[0].numpy(), args.resolution)
                elif method == "tokenizer":
                    pred = decode_tokens(net, ev["tokens"][i], args.resolution)
                else:
                    if nearest is None:  # one embedding and search per mesh serves both retrieval methods
                        sim_M = (
                            train_emb @ embed_all(gen, ev["images"][i : i + 1, args.view : args.view + 1])[0]
                        )
                        nearest = int(sim_M.argmax()) // V
                    j = nearest
                    row["retrieved"] = tr["names"][j]
                    if method == "retrieval-mesh":
                        pred, _ = normalize_mesh(load_mesh(args.train_root / tr["names"][j]))
                    else:
                        pred = decode_tokens(net, tr["tokens"][j], args.resolution)
                row.update(score(pred, ref_unit))
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(
                    f"{i + 1}/{n} {name} {method}: F {row['fscore']:.3f} (no ICP {row['fscore_noicp']:.3f})",
                    flush=True,
                )
    names = set(ev["names"][:n])
    wanted = {setting_name(s) for s in settings} if "gen" in methods else set()
    wanted |= {m for m in methods if m != "gen"}
    rows = [r for r in rows if r["mesh"] in names and r["method"] in wanted]
    if not rows:
        raise SystemExit("no rows to summarize")
    summary = []
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        ch = [r["chamfer"] for r in sel if r["chamfer"] is not None]
        times = [r["sample_s"] for r in sel if "sample_s" in r]
        summary.append({
            "method": method, "shapes": len(sel),
            "fscore": float(np.mean([r["fscore"] for r in sel])),
            "fscore_noicp": float(np.mean([r["fscore_noicp"] for r in sel])),
            "chamfer": float(np.mean(ch)) if ch else None, "empty": sum(r["chamfer"] is None for r in sel),
            "sample_s_mean": float(np.mean(times)) if times else None,
            "sample_s_max": float(np.max(times)) if times else None,
        })  # fmt: skip
    with open(args.out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=summary[0].keys())
        w.writeheader()
        w.writerows(summary)
    result = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "generator_id": getattr(gen, "generator_id", ""),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        "summary": summary,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    for s in summary:
        print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
