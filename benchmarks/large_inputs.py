"""Encode time and peak memory for very large meshes: icospheres of 1.3M and (two of) 5.2M faces.

    PYTHONPATH=. python benchmarks/large_inputs.py [--sizes 8,9x2] [--format ply]

Each size is written once as a binary PLY (or OBJ) in a temporary folder, then encoded by a fresh
`python -m vatcodec encode` process; wall time and the peak resident memory of that process (from
`resource.getrusage` of the child) are recorded. `8` is trimesh's icosphere(subdivisions=8), 1,310,720 faces;
`9x2` is two icosphere(9) side by side, 10,485,760 faces. Rows go to benchmarks/results/large_inputs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "large_inputs.jsonl"


def build(spec: str) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    sub, _, copies = spec.partition("x")
    sphere = trimesh.creation.icosphere(subdivisions=int(sub))
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    n = int(copies or 1)
    vs = [v + [2.5 * i, 0.0, 0.0] for i in range(n)]
    fs = [f + i * len(v) for i in range(n)]
    return np.concatenate(vs), np.concatenate(fs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="8,9x2")
    p.add_argument("--format", default="ply")
    p.add_argument("--extra", default="", help="extra encode options, e.g. '--max-faces 20000000'")
    p.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args()
    from vatcodec.geometry.mesh_write import write_mesh

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in a.sizes.split(","):
            v, f = build(spec)
            src = Path(tmp) / f"ico{spec}.{a.format}"
            write_mesh(v, f, src)
            del v
            cmd = [
                sys.executable,
                "-m",
                "vatcodec",
                "encode",
                str(src),
                "-o",
                str(Path(tmp) / "out.vat"),
                *a.extra.split(),
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            row = {
                "mesh": spec, "faces": len(f), "format": a.format, "file_mb": src.stat().st_size / 2**20,
                "seconds": seconds, "peak_rss_mb": peak / 1024 if peak > before else None, "rc": done.returncode,
                "message": (done.stderr.strip().splitlines() or [""])[-1][:300] if done.returncode else "",
                "extra": a.extra, "machine": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with a.results.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
