"""Probe: refine a latent against labels taken from the input's points and normals alone, instead of the oracle's.

Effort 1 refines against inside/outside labels of 16k queries (an oracle of the mesh). Points offset along their
normals could label queries without one: p -> 0.75, p + a n -> the label ramp at distance a, and queries far from
the surface keep the effort-0 decode's sign. Arms (30 latent steps each, the effort-1 plan, quick F at 128):
`oracle` (effort 1's samples), `free` (the label-free samples), `free_points_oracle` (the same points, oracle labels).

PYTHONPATH=. python benchmarks/label_free_probe.py vatcodec/weights/vat-tp2.safetensors ~/.cache/vatcodec/cache 8
"""

import json
import sys

import numpy as np
import torch
from scipy.spatial import cKDTree

from training.speedrun import val_meshes
from vatcodec.codec.effort import Samples, occupancy_samples, refine
from vatcodec.codec.quick_score import QuickScorer
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.occupancy import OccupancyOracle
from vatcodec.geometry.sampling import sample_surface, semi_continuous_occupancy
from vatcodec.model.checkpoint import load_model

# Along the normal; the labels' surface sits LABEL_OFFSET outside the mesh, so p + a n lies at signed distance
# a - LABEL_OFFSET from it.
OFFSETS = (0.0, 1 / 256, 2 / 256, 4 / 256)
LABEL_OFFSET = 1 / 256
ARMS = ("oracle", "free", "free_points_oracle")


def free_samples(net, unit, idx0, oracle: bool, n: int = 4096, seed: int = 1) -> Samples:
    p_N3, n_N3 = sample_surface(unit, n, seed)
    near = np.concatenate([p_N3 + a * n_N3 for a in OFFSETS])
    near_occ = np.concatenate([semi_continuous_occupancy(np.full(n, a - LABEL_OFFSET)) for a in OFFSETS])
    far = np.random.default_rng(seed).uniform(-0.55, 0.55, (n, 3))
    far = far[cKDTree(sample_surface(unit, 20000, seed + 5)[0]).query(far)[0] > 3 / 128]
    points = np.concatenate([near, far]).astype(np.float32)
    if oracle:
        occ = semi_continuous_occupancy(OccupancyOracle(unit).sdf(points))
    else:
        with torch.no_grad():
            field = net.decode([torch.as_tensor(a)[None] for a in idx0])
            far_occ = (field(torch.from_numpy(far).float()[None])[0].numpy() > 0).astype(np.float32)
        occ = np.concatenate([near_occ, far_occ])
    return Samples(torch.from_numpy(points)[None], torch.from_numpy(occ.astype(np.float32))[None])


torch.set_num_threads(1)
net = load_model(sys.argv[1]).eval()
rows = []
for path in val_meshes(sys.argv[2], int(sys.argv[3])):
    unit, _ = normalize_mesh(load_mesh(path))
    p_N3, n_N3 = sample_surface(unit, net.cfg.input_points, 0)
    with torch.no_grad():
        mu_1KC, _ = net.posterior(torch.from_numpy(np.concatenate([p_N3, n_N3], 1)).float()[None])
    idx0 = [t[0].numpy() for t in net.vq.encode(mu_1KC)]
    score = QuickScorer(unit)
    row = {"mesh": str(path), "effort0": score(net, idx0)}
    for arm in ARMS:
        s = occupancy_samples(unit, 0, 8192, 8192, net.cfg) if arm == "oracle" else None
        s = s or free_samples(net, unit, idx0, oracle=arm == "free_points_oracle")
        row[arm] = score(net, refine(net, s, mu_1KC, len(idx0), 1).indices)
    rows.append(row)
    print(json.dumps(row), flush=True)
base = np.array([r["effort0"] for r in rows])
for arm in ARMS:
    d = np.array([r[arm] for r in rows]) - base
    print(
        f"{arm}: F {base.mean() + d.mean():.3f}, {d.mean():+.3f} +- {d.std(ddof=1) / np.sqrt(len(d)):.3f} over effort 0"
    )
