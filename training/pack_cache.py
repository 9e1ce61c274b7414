"""Packs a training cache small enough to travel to a GPU machine (fp16, fewer points and queries per shape).

    python -m training.pack_cache ~/.cache/vatcodec/cache gpu/cache --surface 2048 --uniform 2560 --near 2560

The result is an ordinary cache (index.json + shards) that `training.tokenizer --data` reads. Subsets are
evenly spaced rows of each shape's arrays, uniform queries first, so the split and the label mix stay as they
were. fp16 keeps positions to about 2.4e-4 near the cube's faces and signed distances to 1e-3 relative: well
inside the label band of 1/128.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from training.data import INDEX_NAME, ShapeCache
from vatcodec.fileio import atomic_output


def _rows(n_have: int, n_want: int) -> np.ndarray:
    return np.linspace(0, n_have - 1, min(n_have, n_want)).round().astype(np.int64)


def pack(src: Path, dst: Path, surface: int, uniform: int, near: int, shard_size: int = 256) -> dict:
    """Writes the packed cache and returns its index."""
    index = json.loads((src / INDEX_NAME).read_text())
    dst.mkdir(parents=True, exist_ok=True)
    shapes = []
    for split in ("train", "val"):
        cache = ShapeCache.load(src, split)
        s_rows = _rows(cache.surface_points.shape[1], surface)
        n_near = cache.query_points.shape[1] - cache.n_uniform
        q_rows = np.concatenate([_rows(cache.n_uniform, uniform), cache.n_uniform + _rows(n_near, near)])
        for start in range(0, len(cache), shard_size):
            take = slice(start, start + shard_size)
            shard = f"{split}-{start // shard_size:03d}.safetensors"
            arrays = {
                "surface_points": cache.surface_points[take][:, s_rows],
                "surface_normals": cache.surface_normals[take][:, s_rows],
                "query_points": cache.query_points[take][:, q_rows],
                "query_sdf": cache.query_sdf[take][:, q_rows],
            }
            with atomic_output(dst / shard, suffix=".safetensors") as tmp:
                save_file({k: np.ascontiguousarray(v, dtype=np.float16) for k, v in arrays.items()}, str(tmp))
            names = cache.names[take]
            shapes += [{"name": n, "shard": shard, "row": r, "split": split} for r, n in enumerate(names)]
    packed = {
        "n_uniform": min(uniform, index["n_uniform"]),
        "roots": index.get("roots", []),
        "shapes": shapes,
    }
    packed["packed_from"] = str(src)
    (dst / INDEX_NAME).write_text(json.dumps(packed, indent=1))
    return packed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="a cache written by training.prepare")
    p.add_argument("dst", type=Path)
    p.add_argument("--surface", type=int, default=2048, help="surface points kept per shape")
    p.add_argument("--uniform", type=int, default=2560, help="uniform queries kept per shape")
    p.add_argument("--near", type=int, default=2560, help="near-surface queries kept per shape")
    a = p.parse_args(argv)
    if not (a.src / INDEX_NAME).is_file():
        print(f"error: {a.src} is not a training cache (no {INDEX_NAME})", file=sys.stderr)
        return 2
    idx = pack(a.src, a.dst, a.surface, a.uniform, a.near)
    size = sum(f.stat().st_size for f in a.dst.iterdir()) / 2**20
    print(f"{len(idx['shapes'])} shapes, {size:.1f} MiB in {a.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
