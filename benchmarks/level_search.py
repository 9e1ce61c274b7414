"""Times the encoder's surface-level search (`choose_level`) on effort-0 tokens of a folder of meshes.

PYTHONPATH=. python benchmarks/level_search.py /tmp/val33 --n 8 --out benchmarks/results/level_search.jsonl

One row per run: the code's commit, the thread count, and per mesh the search's seconds and the level it chose
(in LEVEL_UNIT steps). Run it from another worktree's PYTHONPATH to time another commit on the same meshes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from vatcodec.codec.level import choose_level
from vatcodec.codec.models import as_mesh, get_model
from vatcodec.geometry.mesh_io import normalize_mesh
from vatcodec.geometry.sampling import sample_surface

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")


def mesh_paths(folder: Path, n: int) -> list[Path]:
    """The first mesh file of each of the first `n` subfolders (the layout of benchmarks/effort.py's folders)."""
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
        if files:
            found.append(files[0])
    return found[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--n", type=int, default=8, help="meshes, the first subfolders in name order")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/level_search.jsonl"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = get_model(args.model)
    import vatcodec

    code = Path(vatcodec.__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    meshes = []
    for path in mesh_paths(args.folder, args.n):
        unit, _ = normalize_mesh(as_mesh(path))
        points_N3, normals_N3 = sample_surface(unit, net.cfg.input_points, 0)
        surface_1N6 = torch.from_numpy(np.concatenate([points_N3, normals_N3], axis=1).astype(np.float32))[
            None
        ]
        with torch.inference_mode():
            idx_L = [t[0].numpy().astype(np.int64) for t in net.encode(surface_1N6)]
        start = time.perf_counter()
        level = choose_level(net, idx_L, unit)
        seconds = time.perf_counter() - start
        meshes.append(
            {"mesh": f"{path.parent.name}/{path.name}", "seconds": round(seconds, 3), "level": level}
        )
        print(f"{path.parent.name}/{path.name}: level {level:+d}, {seconds:.2f} s", flush=True)
    total = sum(m["seconds"] for m in meshes)
    row = {"commit": commit, "threads": args.threads, "n": len(meshes), "seconds_total": round(total, 2)}
    row["meshes"] = meshes
    print(f"{commit}: {total:.1f} s for {len(meshes)} searches ({total / max(len(meshes), 1):.2f} s each)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
