"""`encode --quality F` on a folder: does the written file reach F when scored independently, and how big is it?

PYTHONPATH=. python benchmarks/quality_hits.py <corpus>/katorlegaz --out benchmarks/results/quality-katorlegaz \
    [--targets 0.15,0.25] [--effort 0] [--limit N] [--threads 1]

For each mesh and target F: `codec.encode(mesh, quality=F, effort=E)` (the encoder measures F itself, decoding
at 256, and bisects over the scale prefixes); then the written file is decoded again with `codec.decode` at 256
and scored against the input with the benchmark's dense protocol on other sample points (seed 1) than the
encoder's own measurement (seed 0). F is "reachable" when the full file (all scales, same effort) scores >= F under that
same independent protocol. Reported: hit rate among reachable meshes, whether the encoder said "not reached"
(QualityWarning) exactly where it was unreachable, and mean bytes. Rows go to OUT/rows.jsonl (a rerun resumes),
the summary to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import trimesh

from vatcodec import codec
from vatcodec.codec.bitstream import header_info
from vatcodec.geometry.mesh_io import SUPPORTED_SUFFIXES, load_mesh, normalize_mesh
from vatcodec.geometry.metrics import surface_metrics


def independent_f(data: bytes, ref_unit, norm) -> float:
    """F of the decoded file with other surface samples (seed 1) than the encoder's own measurement (seed 0)."""
    mesh = codec.decode(data, resolution=256)
    unit = trimesh.Trimesh(norm.to_unit(np.asarray(mesh.vertices)), np.asarray(mesh.faces), process=False)
    return float(surface_metrics(unit, ref_unit, seed=1)["fscore"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    p.add_argument("--targets", default="0.15,0.25")
    p.add_argument("--effort", type=int, default=0)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    targets = [float(t) for t in args.targets.split(",")]
    paths = sorted(
        q for q in args.folder.rglob("*") if q.is_file() and q.suffix.lower() in SUPPORTED_SUFFIXES
    )
    paths = paths[: args.limit] if args.limit else paths
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "rows.jsonl"
    rows = [json.loads(line) for line in cache.read_text().splitlines()] if cache.is_file() else []
    done = {r["mesh"] for r in rows}
    with open(cache, "a") as log:
        for path in paths:
            name = str(path.relative_to(args.folder))
            if name in done:
                continue
            ref = load_mesh(path)
            ref_unit, norm = normalize_mesh(ref)
            full = codec.encode(ref, effort=args.effort)
            full_f = independent_f(full, ref_unit, norm)
            for target in targets:
                t = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", codec.QualityWarning)
                    data = codec.encode(ref, quality=target, effort=args.effort)
                row = {
                    "mesh": name, "target": target, "bytes": len(data), "full_bytes": len(full),
                    "encoder_f": header_info(data).get("fscore"), "independent_f": independent_f(data, ref_unit, norm),
                    "full_f": full_f, "reachable": full_f >= target,
                    "warned": any(issubclass(w.category, codec.QualityWarning) for w in caught),
                    "encode_s": time.perf_counter() - t,
                }  # fmt: skip
                row["hit"] = row["independent_f"] >= target
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(json.dumps(row), flush=True)
    summary = []
    for target in targets:
        sel = [r for r in rows if r["target"] == target]
        reach = [r for r in sel if r["reachable"]]
        summary.append({
            "target": target, "meshes": len(sel), "reachable": len(reach),
            "hit_rate_reachable": float(np.mean([r["hit"] for r in reach])) if reach else None,
            "warned_when_unreachable": sum(r["warned"] for r in sel if not r["reachable"]),
            "unreachable": len(sel) - len(reach),
            "warned_when_reachable": sum(r["warned"] for r in reach),
            "bytes_mean": float(np.mean([r["bytes"] for r in sel])) if sel else None,
            "full_bytes_mean": float(np.mean([r["full_bytes"] for r in sel])) if sel else None,
            "encode_s_mean": float(np.mean([r["encode_s"] for r in sel])) if sel else None,
        })  # fmt: skip
    settings = {k: str(v) for k, v in vars(args).items()}
    (args.out / "results.json").write_text(json.dumps({"settings": settings, "summary": summary}, indent=2))
    for s in summary:
        print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
