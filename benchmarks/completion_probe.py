"""Probe the decoder's completion of cut streams: surface level, sharpness of the prior, and scale of the fill.

PYTHONPATH=. python benchmarks/completion_probe.py /tmp/val33 --out benchmarks/results/completion_probe.jsonl

Each mesh is encoded at effort 0 under --budget (a cut, completed file), and its stream decoded with variants of
`ContextPrior.complete`: the expected code under the prior's rows raised to 1/T (T < 1 sharpens toward the most
likely code), the filled residuals scaled by A, and the surface at an offset L from the model's level. F (tau 0.01)
by `QuickScorer` at 128. One JSON row per mesh; means per variant are printed. Choose on validation meshes only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vatcodec import codec
from vatcodec.codec import context
from vatcodec.codec.models import get_model, prior_of
from vatcodec.codec.quick_score import QuickScorer
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")
VARIANTS = {  # name: (temperature, fill scale)
    "base": (1.0, 1.0),
    "T0.5": (0.5, 1.0),
    "T0.75": (0.75, 1.0),
    "T1.5": (1.5, 1.0),
    "A1.25": (1.0, 1.25),
    "A0.8": (1.0, 0.8),
}
LEVELS = (-0.25, 0.0, 0.25)


def patched_expected(temperature: float, scale: float):
    def expected(freq_LK: np.ndarray, book_VC: np.ndarray) -> np.ndarray:
        logp_LK = np.log(freq_LK.astype(np.float64)) / temperature
        p_LK = np.exp(logp_LK - logp_LK.max(axis=1, keepdims=True))
        p_LK /= p_LK.sum(axis=1, keepdims=True)
        return scale * (p_LK @ book_VC)

    return expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = get_model(None)
    prior_of(net)
    original = context.expected_codes
    meshes = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in MESH_SUFFIXES)
    rows = []
    with args.out.open("w") as out:
        for path in meshes:
            mesh = load_mesh(path)
            vat = codec.unpack_for(codec.encode(mesh, model=net, max_bytes=args.budget), net)
            if not vat.completed:
                continue
            unit, _ = normalize_mesh(mesh)
            scorer = QuickScorer(unit)
            row = {"mesh": str(path)}
            for name, (temperature, scale) in VARIANTS.items():
                context.expected_codes = patched_expected(temperature, scale)
                try:
                    score = scorer.at_levels(net, vat.indices, True)
                    for level in LEVELS:
                        row[f"{name}@{level}"] = score(level)
                finally:
                    context.expected_codes = original
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            print(path.name, {k: round(v, 3) for k, v in row.items() if k != "mesh"}, flush=True)
    keys = [k for k in rows[0] if k != "mesh"]
    base = np.array([r["base@0.0"] for r in rows])
    for k in keys:
        d = np.array([r[k] for r in rows]) - base
        print(
            f"{k}: {np.mean([r[k] for r in rows]):.4f} ({d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f})"
        )


if __name__ == "__main__":
    main()
