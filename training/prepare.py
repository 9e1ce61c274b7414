"""Turns folders of meshes into a training cache: per-shape surface points and labelled queries in shards.

    python -m training.prepare data/corpus --out data/cache --jobs 2

Shapes whose path contains an excluded library (default: katorlegaz, the test split) are skipped; a stable
hash of each path puts about --val-percent of the rest in the validation split. Bad meshes are skipped with
their reason in report.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from training.data import INDEX_NAME, write_shard
from vatcodec.errors import VatError
from vatcodec.geometry.mesh_io import SUPPORTED_SUFFIXES, load_mesh, normalize_mesh
from vatcodec.geometry.sampling import make_sample


def find_meshes(roots: list[Path], exclude: list[str]) -> list[tuple[str, Path]]:
    """(name, path) of every mesh file under the roots, names relative to their root, sorted.

    A file is excluded when any component of its absolute path names an excluded library, so pointing the
    command straight at the test split's folder still leaves it out.
    """
    banned = {x.lower() for x in exclude}

    def allowed(p: Path) -> bool:
        return not banned & {c.lower() for c in p.resolve().parts}

    found = []
    for root in roots:
        if root.is_file():
            if allowed(root):
                found.append((root.name, root))
            continue
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file() and allowed(p):
                found.append((p.relative_to(root).as_posix(), p))
    return found


def stable_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _work(job: tuple[str, str, dict]) -> tuple[str, dict | None, str | None, float]:
    name, path, opts = job
    t = time.time()
    try:
        mesh, _ = normalize_mesh(load_mesh(path))
        sample = make_sample(
            mesh, opts["surface"], opts["uniform"], opts["near"], seed=stable_hash(name) % 2**32
        )
        return name, sample, None, time.time() - t
    except VatError as e:
        return name, None, str(e), time.time() - t
    except Exception as e:  # a mesh that breaks a library must not stop a 700-mesh run
        return name, None, f"{type(e).__name__}: {e}", time.time() - t


def prepare(
    roots: list[Path],
    out: Path,
    exclude: list[str],
    surface: int = 8192,
    uniform: int = 20_000,
    near: int = 20_000,
    val_percent: float = 5.0,
    shard_size: int = 64,
    jobs: int = 1,
    limit: int = 0,
) -> dict:
    """Writes the cache and returns its report."""
    meshes = find_meshes(roots, exclude)
    if limit:
        meshes = meshes[:limit]
    if not meshes:
        raise VatError(f"no mesh files ({', '.join(SUPPORTED_SUFFIXES)}) under {', '.join(map(str, roots))}")
    out.mkdir(parents=True, exist_ok=True)
    opts = {"surface": surface, "uniform": uniform, "near": near}
    jobs_list = [(n, str(p), opts) for n, p in meshes]
    shapes, skipped, pending, seconds = [], [], [], []
    console = Console(stderr=True)

    def flush():
        shard = f"shard-{len({s['shard'] for s in shapes}):05d}.safetensors"
        write_shard(out / shard, [s for _, s in pending])
        for row, (n, _) in enumerate(pending):
            val = (stable_hash(n) % 10_000) < val_percent * 100
            shapes.append({"name": n, "shard": shard, "row": row, "split": "val" if val else "train"})
        pending.clear()

    ctx = get_context("spawn" if jobs > 1 else "fork")
    with Progress(
        TextColumn("prepare"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
    ) as progress:
        task = progress.add_task("prepare", total=len(jobs_list), info="")
        pool = ctx.Pool(jobs) if jobs > 1 else None
        results = pool.imap(_work, jobs_list, chunksize=1) if pool else map(_work, jobs_list)
        try:
            for name, sample, err, dt in results:
                seconds.append(dt)
                if err:
                    skipped.append({"name": name, "reason": err})
                else:
                    pending.append((name, sample))
                    if len(pending) == shard_size:
                        flush()
                progress.update(task, advance=1, info=f"{len(skipped)} skipped")
        finally:
            if pool:
                pool.terminate()
        if pending:
            flush()
    report = {
        "roots": [str(r) for r in roots],
        "excluded": exclude,
        "n_uniform": uniform,
        "surface_points": surface,
        "near_points": near,
        "shapes": shapes,
        "counts": {
            "train": sum(s["split"] == "train" for s in shapes),
            "val": sum(s["split"] == "val" for s in shapes),
            "skipped": len(skipped),
        },
        "seconds_per_mesh": sum(seconds) / max(1, len(seconds)),
    }
    (out / INDEX_NAME).write_text(json.dumps(report, indent=1))
    (out / "report.json").write_text(
        json.dumps(
            {"skipped": skipped, "counts": report["counts"], "seconds_per_mesh": report["seconds_per_mesh"]},
            indent=1,
        )
    )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", type=Path, help="folders (or files) of meshes")
    p.add_argument("--out", type=Path, default=Path("data/cache"))
    p.add_argument(
        "--exclude", nargs="*", default=["katorlegaz"], help="path components to skip (test split)"
    )
    p.add_argument("--surface", type=int, default=8192, help="surface points kept per shape")
    p.add_argument("--uniform", type=int, default=20_000, help="uniform queries per shape")
    p.add_argument("--near", type=int, default=20_000, help="near-surface queries per shape")
    p.add_argument("--val-percent", type=float, default=5.0)
    p.add_argument("--shard-size", type=int, default=64)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--limit", type=int, default=0, help="only the first N meshes (smoke runs)")
    a = p.parse_args(argv)
    try:
        rep = prepare(
            a.roots,
            a.out,
            a.exclude,
            a.surface,
            a.uniform,
            a.near,
            a.val_percent,
            a.shard_size,
            a.jobs,
            a.limit,
        )
    except VatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    c = rep["counts"]
    print(
        f"{c['train']} train, {c['val']} val, {c['skipped']} skipped "
        f"({rep['seconds_per_mesh']:.2f} s/mesh); report in {a.out / 'report.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
