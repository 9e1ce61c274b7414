"""Probe: does a file that holds two token streams, decoded as the mean of their fields, beat either stream alone?

At 1 KB the whole vat-tp2 stream takes about 370 B, so most of the budget is unused. A second stream (another
model, or the same model on another sampling of the surface) fits beside it. This measures, per validation mesh
and at the full stream, the F and quick F of each stream alone and of the mean of the two logit fields, each at
the level search's coarse surface levels, so that the gain of a two-stream file over the better stream by quick F
(what `--also-model` and `--tries` write) is known before the format changes.

PYTHONPATH=. python benchmarks/ensemble_probe.py CKPT_A CKPT_B ~/.cache/vatcodec/cache --n 33 \
    >> benchmarks/results/ensemble_probe.jsonl
"""

import argparse
import json
import time

import numpy as np
import torch
import trimesh

from training.speedrun import val_meshes
from vatcodec.codec.completion import stream_field
from vatcodec.codec.extract import extract_mesh
from vatcodec.codec.quick_score import QUICK_QUERIES, QUICK_SAMPLES
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import reference_index, surface_metrics
from vatcodec.geometry.sampling import sample_surface
from vatcodec.model.checkpoint import load_model

# Logit offsets from each stream's own level: the level search's coarse steps.
LEVELS = (-0.5, -0.25, 0.0, 0.25, 0.5)


def field_of(net, unit, seed: int):
    pts, nrm = sample_surface(unit, net.cfg.input_points, seed)
    surface_1N6 = torch.from_numpy(np.concatenate([pts, nrm], 1).astype(np.float32))[None]
    with torch.inference_mode():
        idx_L = [t[0].numpy().astype(np.int64) for t in net.encode(surface_1N6)]
    return stream_field(net, idx_L)


def scores(field, unit, full_index, quick_index, resolution: int, level: float = 0.0) -> tuple[float, float]:
    """(F, quick F) of the surface {field = level}."""
    v_N3, f_F3 = extract_mesh(field, resolution, level=level)
    if len(f_F3) == 0:
        return 0.0, 0.0
    pred = trimesh.Trimesh(v_N3, f_F3, process=False)
    f = surface_metrics(pred, unit, ref_index=full_index)["fscore"]
    q = surface_metrics(pred, unit, n_query=QUICK_QUERIES, n_ref=QUICK_SAMPLES, ref_index=quick_index)[
        "fscore"
    ]
    return round(float(f), 4), round(float(q), 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt_a")
    ap.add_argument("ckpt_b")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=33)
    ap.add_argument("--seed-b", type=int, default=0, help="sampling seed of stream B (A uses 0)")
    ap.add_argument("--resolution", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net_a = load_model(args.ckpt_a).eval()
    net_b = net_a if args.ckpt_b == args.ckpt_a else load_model(args.ckpt_b).eval()
    for path in val_meshes(args.data, args.n):
        t0 = time.monotonic()
        unit, _ = normalize_mesh(load_mesh(path))
        full_index = reference_index(unit)
        quick_index = reference_index(unit, QUICK_QUERIES, QUICK_SAMPLES)
        field_a, field_b = field_of(net_a, unit, 0), field_of(net_b, unit, args.seed_b)

        def mean_field(p, fa=field_a, fb=field_b):
            return 0.5 * (fa(p) + fb(p))

        row = {
            "a": args.ckpt_a,
            "b": args.ckpt_b,
            "seed_b": args.seed_b,
            "mesh": path.parent.name + "/" + path.name,
            **{
                name + "_fq": {
                    str(lv): scores(fld, unit, full_index, quick_index, args.resolution, lv) for lv in LEVELS
                }
                for name, fld in (("a", field_a), ("b", field_b), ("mean", mean_field))
            },
            "seconds": round(time.monotonic() - t0, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
