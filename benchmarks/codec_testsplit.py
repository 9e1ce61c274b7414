"""Rate-distortion of the shipped codec on a folder of meshes: bytes, F-score and Chamfer at every scale prefix.

    python benchmarks/codec_testsplit.py /path/to/corpus/katorlegaz --out benchmarks/results/vat-s-katorlegaz
    python benchmarks/codec_testsplit.py ... --limit 10 --jobs 1 --prefixes 10   # timing run, 2 threads

Writes rows.jsonl (one row per mesh and prefix; an interrupted run resumes), then summary.json and summary.csv
(means per prefix, encode/decode seconds, peak memory). Metrics: the dense point-to-surface protocol of
vatcodec.metrics, in the reference mesh's unit-cube normalization.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _one(job: tuple[str, str, str | None, list[int], int, int]) -> list[dict]:
    path, name, model_path, prefixes, resolution, threads = job
    import torch
    import trimesh

    from vatcodec.codec import decode, encode, get_model
    from vatcodec.mesh_io import load_mesh, normalize_mesh
    from vatcodec.metrics import surface_metrics

    torch.set_num_threads(threads)
    net = get_model(model_path)
    ref = load_mesh(path)
    ref_unit, norm = normalize_mesh(ref)
    rows = []
    for n in prefixes:
        t = time.perf_counter()
        data = encode(ref, model=net, scales=n)
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        mesh = decode(data, model=net, resolution=resolution)
        t_dec = time.perf_counter() - t
        pred = trimesh.Trimesh(norm.to_unit(np.asarray(mesh.vertices)), mesh.faces, process=False)
        m = surface_metrics(pred if len(pred.faces) else None, ref_unit)
        rows.append(
            {
                "mesh": name,
                "scales": n,
                "bytes": len(data),
                "fscore": m["fscore"],
                "chamfer": m["chamfer"],
                "normal_consistency": m["normal_consistency"],
                "encode_s": t_enc,
                "decode_s": t_dec,
                "faces": len(mesh.faces),
                "input_bytes": os.path.getsize(path),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for n in sorted({r["scales"] for r in rows}):
        rs = [r for r in rows if r["scales"] == n]
        cd = np.array([r["chamfer"] for r in rs])
        out.append(
            {
                "scales": n,
                "meshes": len(rs),
                "mean_bytes": float(np.mean([r["bytes"] for r in rs])),
                "mean_fscore": float(np.mean([r["fscore"] for r in rs])),
                "median_fscore": float(np.median([r["fscore"] for r in rs])),
                "mean_chamfer": float(np.mean(cd[np.isfinite(cd)])) if np.isfinite(cd).any() else None,
                "failed_decodes": int((~np.isfinite(cd)).sum()),
                "mean_normal_consistency": float(np.mean([r["normal_consistency"] for r in rs])),
                "mean_encode_s": float(np.mean([r["encode_s"] for r in rs])),
                "mean_decode_s": float(np.mean([r["decode_s"] for r in rs])),
                "max_decode_s": float(np.max([r["decode_s"] for r in rs])),
                "peak_rss_mb": float(np.max([r["peak_rss_mb"] for r in rs])),
                "mean_ratio": float(np.mean([r["input_bytes"] / r["bytes"] for r in rs])),
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--prefixes", default="all", help="comma list of scale counts, or 'all'")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args()
    from vatcodec.codec import get_model
    from vatcodec.mesh_io import SUPPORTED_SUFFIXES

    S = len(get_model(a.model).cfg.schedule)
    prefixes = list(range(1, S + 1)) if a.prefixes == "all" else [int(x) for x in a.prefixes.split(",")]
    paths = sorted(q for q in a.folder.rglob("*") if q.suffix.lower() in SUPPORTED_SUFFIXES)
    paths = paths[: a.limit] if a.limit else paths
    a.out.mkdir(parents=True, exist_ok=True)
    rows_file = a.out / "rows.jsonl"
    done = (
        {json.loads(x)["mesh"] for x in rows_file.read_text().splitlines()} if rows_file.exists() else set()
    )
    threads = max(1, (os.cpu_count() or 1) // a.jobs)
    jobs = [
        (str(q), q.relative_to(a.folder).as_posix(), a.model, prefixes, a.resolution, threads)
        for q in paths
        if q.relative_to(a.folder).as_posix() not in done
    ]
    t0 = time.time()
    with open(rows_file, "a") as f, ProcessPoolExecutor(a.jobs) as pool:
        for i, rows in enumerate(pool.map(_one, jobs), 1):
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.flush()
            print(
                f"[{i}/{len(jobs)}] {rows[0]['mesh']}: F "
                + " ".join(f"{r['fscore']:.3f}" for r in rows)
                + f" ({time.time() - t0:.0f} s)",
                flush=True,
            )
    rows = [json.loads(x) for x in rows_file.read_text().splitlines()]
    summary = summarize(rows)
    (a.out / "summary.json").write_text(
        json.dumps(
            {"folder": str(a.folder), "model": a.model, "resolution": a.resolution, "prefixes": summary},
            indent=1,
        )
    )
    with open(a.out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    for s in summary:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
