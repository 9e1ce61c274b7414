"""Rate-distortion of the classical baselines (simplify + Draco, voxels + zstd) on a folder of meshes.

Each mesh is mapped to the unit cube (bbox centred, longest side 1), both baselines are run at
every byte budget, and each decode is scored with ``surface_metrics`` (F-score at tau = 0.01,
Chamfer, normal consistency). A budget where a codec has nothing that fits scores F = 0.

Writes ``<out>/baselines_per_mesh.csv`` (one row per mesh, codec and budget) and
``<out>/baselines_summary.csv`` (mean F per budget for each codec and for the per-mesh best of
the two), and prints the summary with timings.

Usage (from the repo root):
    PYTHONPATH=. python benchmarks/baselines_rd.py [FOLDER] [--n-meshes 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from vatcodec.baselines import DracoBaseline, VoxelBaseline
from vatcodec.errors import VatError
from vatcodec.mesh_io import SUPPORTED_SUFFIXES, load_mesh, normalize_mesh
from vatcodec.metrics import surface_metrics

DEFAULT_FOLDER = Path("/work/corpus/lib/blendswap-cc-0")
DEFAULT_BUDGETS = (256, 512, 1024, 2048, 4096, 8192)
CODECS = {"draco": DracoBaseline, "voxel": VoxelBaseline}
FIELDS = (
    "mesh",
    "faces",
    "codec",
    "budget",
    "nbytes",
    "fscore",
    "chamfer",
    "normal_consistency",
    "params",
    "seconds",
)


def find_meshes(folder: Path, limit: int) -> list[Path]:
    """The first ``limit`` mesh files under ``folder`` in sorted path order."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    return paths[:limit]


def run_mesh(path: Path, budgets: tuple[int, ...]) -> tuple[list[dict], dict[str, float]]:
    """Rows for one mesh (every codec at every budget) and the seconds each codec took."""
    mesh, _ = normalize_mesh(load_mesh(path))
    rows, seconds = [], {}
    for codec, baseline_class in CODECS.items():
        start = time.perf_counter()
        baseline = baseline_class(mesh)
        for budget in budgets:
            t0 = time.perf_counter()
            result = baseline.at_budget(budget)
            if result is None:
                metrics = {"fscore": 0.0, "chamfer": float("inf"), "normal_consistency": 0.0}
            else:
                # Draco's search already scored its pick with the same call (same seed, same frame).
                metrics = result.metrics or surface_metrics(result.mesh, mesh)
            rows.append(
                {
                    "mesh": str(path),
                    "faces": len(mesh.faces),
                    "codec": codec,
                    "budget": budget,
                    "nbytes": "" if result is None else result.nbytes,
                    "fscore": round(metrics["fscore"], 5),
                    "chamfer": metrics["chamfer"],
                    "normal_consistency": round(metrics["normal_consistency"], 5),
                    "params": "" if result is None else json.dumps(result.params, sort_keys=True),
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
        seconds[codec] = time.perf_counter() - start
    return rows, seconds


def summarize(rows: list[dict], budgets: tuple[int, ...]) -> list[dict]:
    """Mean F per budget: per codec, and the per-mesh best of the codecs."""
    summary = []
    meshes = sorted({row["mesh"] for row in rows})
    for budget in budgets:
        at_budget = [row for row in rows if row["budget"] == budget]
        entry = {"budget": budget}
        for codec in CODECS:
            scores = [row["fscore"] for row in at_budget if row["codec"] == codec]
            entry[f"{codec}_mean_f"] = round(float(np.mean(scores)), 4)
            entry[f"{codec}_none"] = sum(row["nbytes"] == "" for row in at_budget if row["codec"] == codec)
        best = [max(row["fscore"] for row in at_budget if row["mesh"] == mesh) for mesh in meshes]
        entry["best_mean_f"] = round(float(np.mean(best)), 4)
        summary.append(entry)
    return summary


def write_csv(path: Path, rows: list[dict], fields) -> None:
    """Writes ``rows`` (dicts keyed by ``fields``) as a CSV file with a header line."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def main() -> int:
    """Runs the benchmark from the command line; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--n-meshes", type=int, default=10)
    parser.add_argument("--budgets", default=",".join(map(str, DEFAULT_BUDGETS)))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/baselines"))
    args = parser.parse_args()
    budgets = tuple(int(b) for b in args.budgets.split(","))
    paths = find_meshes(args.folder, args.n_meshes)
    if not paths:
        print(f"error: no mesh files under {args.folder}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    rows, timings = [], []
    for i, path in enumerate(paths, 1):
        try:
            mesh_rows, seconds = run_mesh(path, budgets)
        except VatError as e:
            print(f"[{i}/{len(paths)}] skipped {path}: {e}", file=sys.stderr)
            continue
        rows += mesh_rows
        timings.append(seconds)
        scores = " ".join(f"{r['codec'][0]}{r['budget']}={r['fscore']:.2f}" for r in mesh_rows)
        took = " ".join(f"{codec} {s:.1f}s" for codec, s in seconds.items())
        print(f"[{i}/{len(paths)}] {path.parent.name}/{path.name} ({took}): {scores}", flush=True)
    if not rows:
        print("error: no mesh could be loaded", file=sys.stderr)
        return 1
    write_csv(args.out / "baselines_per_mesh.csv", rows, FIELDS)
    summary = summarize(rows, budgets)
    write_csv(args.out / "baselines_summary.csv", summary, summary[0].keys())
    print(f"\n{len(timings)} meshes from {args.folder}; mean F-score at tau = 0.01 (no fit = 0):")
    print(f"{'budget':>7} {'draco':>7} {'(none)':>6} {'voxel':>7} {'(none)':>6} {'best':>7}")
    for e in summary:
        print(
            f"{e['budget']:>7} {e['draco_mean_f']:>7.3f} {e['draco_none']:>6} "
            f"{e['voxel_mean_f']:>7.3f} {e['voxel_none']:>6} {e['best_mean_f']:>7.3f}"
        )
    for codec in CODECS:
        per_mesh = [t[codec] for t in timings]
        print(
            f"{codec}: {np.mean(per_mesh):.1f} s per mesh for {len(budgets)} budgets "
            f"(max {np.max(per_mesh):.1f} s), metrics included"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
