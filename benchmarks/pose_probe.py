"""Probe: does choosing the encoder's input pose (or sampling seed) per mesh by quick F lift the decoded F?

The tokenizer was trained under flips of x and z and quarter turns about y (the 8 symmetries of the unit cube that
keep y up), so each pose of a mesh is a valid input that quantizes and decodes differently. An encoder could try
several and store the pose (3 bits) for the decoder to undo. This measures, per validation mesh, the full-stream F
(tau 0.01, marching cubes at 128, 30k/300k samples) and the quick F (10k/100k, what an encoder can measure) of
every candidate, so that the gain of picking by quick F is known before anything is built.

PYTHONPATH=. python benchmarks/pose_probe.py CKPT ~/.cache/vatcodec/cache --n 33 --mode poses \
    >> benchmarks/results/pose_probe.jsonl
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


def poses() -> list[np.ndarray]:
    """The 8 rotations/reflections of the training augmentation, as 3x3 matrices acting on row vectors."""
    turn = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)  # (x, y, z) -> (z, y, -x)
    out = []
    for flip in (1.0, -1.0):
        for k in range(4):
            m = np.diag([flip, 1.0, 1.0]) @ np.linalg.matrix_power(turn, k)
            if not any(np.allclose(m, o) for o in out):
                out.append(m)
    return out


def posed(mesh: trimesh.Trimesh, m_33: np.ndarray) -> trimesh.Trimesh:
    faces = np.asarray(mesh.faces)
    if np.linalg.det(m_33) < 0:  # a reflection turns the winding inside out; keep normals outward
        faces = faces[:, ::-1]
    return trimesh.Trimesh(np.asarray(mesh.vertices) @ m_33, faces, process=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=33)
    ap.add_argument("--mode", choices=("poses", "seeds"), default="poses")
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = load_model(args.ckpt).eval()
    for path in val_meshes(args.data, args.n):
        t0 = time.monotonic()
        unit, _ = normalize_mesh(load_mesh(path))
        full_index = reference_index(unit)
        quick_index = reference_index(unit, QUICK_QUERIES, QUICK_SAMPLES)
        if args.mode == "poses":
            cands = [(m, 0) for m in poses()[: args.candidates]]
        else:
            cands = [(np.eye(3), s) for s in range(args.candidates)]
        f, q = [], []
        for m_33, seed in cands:
            pts, nrm = sample_surface(posed(unit, m_33), net.cfg.input_points, seed)
            surface_1N6 = torch.from_numpy(np.concatenate([pts, nrm], 1).astype(np.float32))[None]
            with torch.inference_mode():
                idx_L = [t[0].numpy().astype(np.int64) for t in net.encode(surface_1N6)]
                v_N3, f_F3 = extract_mesh(stream_field(net, idx_L), args.resolution)
            if len(f_F3) == 0:
                f.append(0.0)
                q.append(0.0)
                continue
            pred = trimesh.Trimesh(v_N3 @ m_33.T, f_F3, process=False)  # back to the input's pose
            f.append(float(surface_metrics(pred, unit, ref_index=full_index)["fscore"]))
            q.append(
                float(
                    surface_metrics(
                        pred, unit, n_query=QUICK_QUERIES, n_ref=QUICK_SAMPLES, ref_index=quick_index
                    )["fscore"]
                )
            )
        row = {
            "ckpt": args.ckpt,
            "mode": args.mode,
            "mesh": path.parent.name + "/" + path.name,
            "f": [round(x, 4) for x in f],
            "quick": [round(x, 4) for x in q],
            "seconds": round(time.monotonic() - t0, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
