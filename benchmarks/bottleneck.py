"""Where a tokenizer loses quality: decoded F from the continuous latent mu against the token stream, and by split.

    PYTHONPATH=. python benchmarks/bottleneck.py CKPT ~/.cache/vatcodec/cache [--split val] [--n 8] \
        [--resolutions 128] [--points N] >> benchmarks/results/bottleneck.jsonl

For each mesh (n evenly spaced meshes of a cache split): the dense F-score (tau 0.01, unit cube) of the surface
decoded from mu itself (no quantization: what the encoder + decoder can do), and from the full token stream (what
the codec writes). A large gap says the quantizer (codebook, scales, bytes) is the limit; no gap says the encoder
and decoder are. The same numbers on the training split against validation say whether more data or more fit is
what is missing. Never run it on the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import trimesh

from training.speedrun import val_meshes
from vatcodec.codec.extract import GridSpec, grid_to_mesh, occupancy_grid
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import surface_metrics
from vatcodec.geometry.sampling import sample_surface
from vatcodec.model.checkpoint import load_model


def fscore_of(field, ref_unit: trimesh.Trimesh, resolution: int) -> float:
    values, _ = occupancy_grid(field, resolution)
    verts_N3, faces_F3 = grid_to_mesh(values, GridSpec(resolution))
    if len(faces_F3) == 0:
        return 0.0
    return float(surface_metrics(trimesh.Trimesh(verts_N3, faces_F3, process=False), ref_unit)["fscore"])


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("data")
    p.add_argument("--split", default="val", choices=("val", "train"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--resolutions", default="128")
    p.add_argument(
        "--points", type=int, default=0, help="surface points fed to the encoder (0: the config's)"
    )
    p.add_argument("--threads", type=int, default=1)
    o = p.parse_args(argv)
    torch.set_num_threads(o.threads)
    net = load_model(o.ckpt).eval()
    cfg = net.cfg
    rows = {}
    t0 = time.time()
    for path in val_meshes(o.data, o.n, o.split):
        ref_unit, _ = normalize_mesh(load_mesh(path))
        pts_N3, nrm_N3 = sample_surface(ref_unit, o.points or cfg.input_points, 0)
        surface_1N6 = torch.from_numpy(np.concatenate([pts_N3, nrm_N3], 1).astype(np.float32))[None]
        mu_1KC, _ = net.posterior(surface_1N6)
        fields = {"mu": net.decode_latent(mu_1KC), "tokens": net.decode(net.vq.encode(mu_1KC))}
        for res in map(int, o.resolutions.split(",")):
            for kind, field in fields.items():
                rows.setdefault(f"{kind}@{res}", []).append(fscore_of(field, ref_unit, res))
    out = {
        "ckpt": o.ckpt,
        "split": o.split,
        "points": o.points or cfg.input_points,
        "meshes": o.n,
        "seconds": round(time.time() - t0, 1),
        **{f"f_{k}": round(float(np.mean(v)), 4) for k, v in rows.items()},
        **{f"all_{k}": [round(x, 3) for x in v] for k, v in rows.items()},
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
