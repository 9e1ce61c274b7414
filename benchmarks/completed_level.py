"""Which surface level suits completed streams: quick F of effort-0 files under a budget, at offsets from the model's.

PYTHONPATH=. python benchmarks/completed_level.py /tmp/val33 --budget 256 --out benchmarks/results/completed_level.jsonl

Each mesh of the folder is encoded at effort 0 under the budget (a cut, completed file when the budget cuts the
stream) and its decode scored with `QuickScorer` (F at tau 0.01, marching cubes at 128) at every offset of
--offsets logits from the model's full-stream level. One JSON row per mesh; the means per offset are printed.
Choose on validation meshes only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vatcodec import codec
from vatcodec.codec.models import get_model
from vatcodec.codec.quick_score import QuickScorer
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--offsets", default="-0.5,-0.25,0,0.25,0.5")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = get_model(None)
    offsets = [float(o) for o in args.offsets.split(",")]
    meshes = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES)
    rows = []
    with args.out.open("w") as out:
        for path in meshes:
            mesh = load_mesh(path)
            data = codec.encode(mesh, model=net, max_bytes=args.budget)
            vat = codec.unpack_for(data, net)
            unit, _ = normalize_mesh(mesh)
            score = QuickScorer(unit).at_levels(net, vat.indices, vat.completed)
            row = {"mesh": str(path), "completed": vat.completed, "f": {str(o): score(o) for o in offsets}}
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            print(path.name, vat.completed, {k: round(v, 3) for k, v in row["f"].items()}, flush=True)
    for completed in (True, False):
        sel = [r for r in rows if r["completed"] == completed]
        if sel:
            means = {o: float(np.mean([r["f"][str(o)] for r in sel])) for o in offsets}
            print(f"completed={completed}: {len(sel)} meshes", {o: round(m, 4) for o, m in means.items()})


if __name__ == "__main__":
    main()
