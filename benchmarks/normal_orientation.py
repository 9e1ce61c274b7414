"""How many surface samples' normals point out of the shape, into it, or lie on sheets (the oracle decides).

A sample's normal points out when the oracle's signed distance rises along it by more than the step (2e against
-2e inward); on a sheet or a part thinner than the step both sides are outside and it is neither.

PYTHONPATH=. python benchmarks/normal_orientation.py ~/.cache/vatcodec/cache 33 [val|train]
"""

import sys

import numpy as np

from training.speedrun import val_meshes
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.occupancy import OccupancyOracle
from vatcodec.geometry.sampling import sample_surface

STEP = 3 / 256  # past the labels' 1/256 offset and inside the ramp of most solid parts

fractions = []
for path in val_meshes(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "val"):
    unit, _ = normalize_mesh(load_mesh(path))
    p_N3, n_N3 = sample_surface(unit, 2048, 0)
    oracle = OccupancyOracle(unit)
    rise_N = oracle.sdf(p_N3 + STEP * n_N3) - oracle.sdf(p_N3 - STEP * n_N3)
    fractions.append(((rise_N > STEP).mean(), (rise_N < -STEP).mean()))
    print(f"{path}: out {fractions[-1][0]:.3f}, in {fractions[-1][1]:.3f}", flush=True)
f = np.array(fractions)
print(
    f"{len(f)} meshes: out {f[:, 0].mean():.3f}, in {f[:, 1].mean():.3f}, neither {1 - f.sum(1).mean():.3f}"
)
