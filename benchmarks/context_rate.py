"""What a learned context model would save: token bits under the range coder's tables against a next-scale prior.

PYTHONPATH=. python benchmarks/context_rate.py /tmp/val33 --prior ~/.cache/vatcodec/runs/s15-prior/last.safetensors

For each mesh the shipped model's effort-0 tokens (as `vatcodec encode` writes them) are scored two ways: the
bytes of the range coder (coder 2, per-scale frequency tables: measured, the real files) and the ideal code length
of a next-scale autoregressive prior run with its null condition (a generator checkpoint: `training.generator`,
cross-entropy of each scale given the earlier ones, in bits) and the real bytes of `vatcodec.codec.context` coding
them with that prior. A projected file keeps the real range-coded file's header and framing, swaps each scale's
segment for the context-coded one, and adds CHECK_BYTES (a check of the decoded indices that a format coder would
need, since a prior computed differently decodes to other indices without an error). Per byte budget the script
reports the largest scale prefix that fits either way. The file size is a projection until the coder is in the
format; the segments are real. One JSON row per mesh goes to --out.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vatcodec import codec
from vatcodec.codec.bitstream import header_info, unpack
from vatcodec.codec.context import ContextPrior
from vatcodec.codec.entropy import encode_scale
from vatcodec.codec.models import as_mesh, get_model, tables_of
from vatcodec.generation.checkpoint import load_generator

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")
CHECK_BYTES = 2


def prior_bits(gen, idx_L: list[np.ndarray]) -> list[float]:
    """Ideal code length in bits of each scale's tokens under the prior (null condition), given the earlier ones."""
    tokens_1L = torch.from_numpy(np.concatenate(idx_L))[None]
    with torch.no_grad():
        inputs = gen.vq.teacher_inputs(gen.split(tokens_1L))
        logits_1LV = gen.logits_full(gen.null_cond.reshape(1, -1), inputs)
        nll_L = F.cross_entropy(logits_1LV[0].double(), tokens_1L[0], reduction="none")
    return [float(part.sum()) / math.log(2) for part in nll_L.split(gen.counts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--prior", required=True, help="generator checkpoint whose null condition is the prior")
    ap.add_argument("--model", default=None, help="tokenizer checkpoint (default: the shipped model)")
    ap.add_argument("--budgets", default="256,512,1024")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/context_rate.jsonl"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, gen = get_model(args.model), load_generator(args.prior)
    coder = ContextPrior(load_generator(args.prior))
    freq_SK, budgets = tables_of(net), [int(b) for b in args.budgets.split(",")]
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES)
    paths = paths[: args.limit] if args.limit else paths
    rows = []
    for path in paths:
        mesh = as_mesh(path)
        full = codec.encode(mesh, model=net, coder="range", level_search=False)
        idx_L = unpack(full, tables=freq_SK).indices
        table_bytes = [len(encode_scale(idx, freq_SK[s])) for s, idx in enumerate(idx_L)]
        bits = prior_bits(gen, idx_L)
        context_bytes = [len(seg) for seg in coder.encode(idx_L)]
        sizes_tables, sizes_prior = [], []
        for n in range(1, len(idx_L) + 1):
            size = len(codec.encode(mesh, model=net, coder="range", level_search=False, scales=n))
            sizes_tables.append(size)
            sizes_prior.append(size - sum(table_bytes[:n]) + sum(context_bytes[:n]) + CHECK_BYTES)
        row = {
            "mesh": f"{path.parent.name}/{path.name}",
            "tokens": [len(i) for i in idx_L],
            "table_bytes": table_bytes,
            "prior_bits": [round(b, 1) for b in bits],
            "context_bytes": context_bytes,
            "size_tables": sizes_tables,
            "size_prior": sizes_prior,
            "format": header_info(full)["format"],
        }
        for b in budgets:
            row[f"scales_tables_{b}"] = sum(s <= b for s in sizes_tables)
            row[f"scales_prior_{b}"] = sum(s <= b for s in sizes_prior)
        rows.append(row)
        print(row["mesh"], sizes_tables[-1], "->", sizes_prior[-1], "B", flush=True)
    tokens = np.sum(rows[0]["tokens"])
    t_bits = np.mean([8 * sum(r["table_bytes"]) for r in rows]) / tokens
    p_bits = np.mean([sum(r["prior_bits"]) for r in rows]) / tokens
    c_bits = np.mean([8 * sum(r["context_bytes"]) for r in rows]) / tokens
    print(
        f"{len(rows)} meshes: {t_bits:.2f} bits a token (range coder) against {p_bits:.2f} (prior, ideal)"
        f" and {c_bits:.2f} (context coder, real segments)"
    )
    per_scale = np.mean(
        [[8 * t / n for t, n in zip(r["table_bytes"], r["tokens"], strict=True)] for r in rows], axis=0
    )
    per_scale_p = np.mean(
        [[b / n for b, n in zip(r["prior_bits"], r["tokens"], strict=True)] for r in rows], axis=0
    )
    print("per scale, tables:", np.round(per_scale, 2), " prior:", np.round(per_scale_p, 2))
    full_t, full_p = (np.mean([r[k][-1] for r in rows]) for k in ("size_tables", "size_prior"))
    print(f"full stream: {full_t:.0f} B (range coder) against {full_p:.0f} B (projected)")
    for b in budgets:
        t = np.bincount(
            [r[f"scales_tables_{b}"] for r in rows], minlength=len(tokens_list := rows[0]["tokens"]) + 1
        )
        p = np.bincount([r[f"scales_prior_{b}"] for r in rows], minlength=len(tokens_list) + 1)
        print(f"{b} B: meshes by scales that fit, tables {t.tolist()}, prior {p.tolist()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps({"folder": str(args.folder), "prior": args.prior, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
