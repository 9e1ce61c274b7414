"""Probe: does mapping a decode's bounding box onto the input's (per axis, 6 numbers a file) raise F? (It does not.)

PYTHONPATH=. python benchmarks/bbox_probe.py vatcodec/weights/vat-tp2.safetensors ~/.cache/vatcodec/cache 33
"""

import json
import sys

import numpy as np
import torch
import trimesh

from training.speedrun import val_meshes
from vatcodec.codec import decode, encode
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import surface_metrics
from vatcodec.model.checkpoint import load_model

torch.set_num_threads(1)
net = load_model(sys.argv[1]).eval()
rows = []
for path in val_meshes(sys.argv[2], int(sys.argv[3])):
    ref_unit, norm = normalize_mesh(load_mesh(path))
    mesh = decode(encode(load_mesh(path), model=net, coder="raw"), model=net, resolution=128)
    v_N3, faces = norm.to_unit(np.asarray(mesh.vertices)), np.asarray(mesh.faces)
    (lo_t, hi_t), lo_d, hi_d = ref_unit.bounds, v_N3.min(0), v_N3.max(0)
    variants = {
        "as_decoded": v_N3,
        "box_mapped": (v_N3 - lo_d) * (hi_t - lo_t) / np.maximum(hi_d - lo_d, 1e-6) + lo_t,
        "box_centred": v_N3 - (lo_d + hi_d) / 2 + (lo_t + hi_t) / 2,
    }
    row = {
        "mesh": str(path),
        "low_error": (lo_d - lo_t).round(4).tolist(),
        "high_error": (hi_d - hi_t).round(4).tolist(),
    }
    for k, v in variants.items():
        row[k] = surface_metrics(trimesh.Trimesh(v, faces, process=False), ref_unit)["fscore"]
    rows.append(row)
    print(json.dumps(row), flush=True)
base = np.array([r["as_decoded"] for r in rows])
for k in ("box_mapped", "box_centred"):
    d = np.array([r[k] for r in rows]) - base
    better, worse = (d > 0.001).sum(), (d < -0.001).sum()
    print(f"{k}: {d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f} F ({better} better, {worse} worse)")
