"""Surface levels per prefix: decoded F-score of validation meshes for every prefix at candidate isos.

A coarse prefix decodes a blurred field whose logits sit below the full stream's, so at the full stream's level
it often decodes to nothing. This measures F (tau 0.01, marching cubes at 128) on validation meshes for each
prefix of 1 .. S scales and each candidate level, picks the best level per prefix (ties: the lowest), and
prints the `--iso-logit` (full stream) and `--prefix-iso` for `training.export`.

PYTHONPATH=. python benchmarks/prefix_iso.py CKPT ~/.cache/vatcodec/cache [N] [ISOS] [JOBS] \
    >> benchmarks/results/prefix_iso.jsonl

JOBS processes (default 1, one thread each) share the meshes.
"""

import dataclasses
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from training.speedrun import val_meshes
from vatcodec.codec import decode, encode
from vatcodec.errors import VatError
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import decoded_surface_metrics
from vatcodec.model.checkpoint import load_model

TIE = 0.005  # F-scores this close are a tie (8 meshes: well inside the noise)
ISOS = (-1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)


def mesh_scores(ckpt: str, path, isos: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """F-scores (prefix, iso) of one mesh's file decoded at 128, and which decodes were empty (those score 0)."""
    torch.set_num_threads(1)
    net = load_model(ckpt).eval()
    base = dataclasses.replace(net.cfg, prefix_iso=())
    S = len(base.scales)
    ref = load_mesh(path)
    ref_unit, norm = normalize_mesh(ref)
    net.cfg = base
    full = encode(ref, model=net, coder="raw")  # the loaded model keeps its id: one file for every level
    f_PI = np.zeros((S, len(isos)))
    empty_PI = np.zeros((S, len(isos)), dtype=int)
    for i, iso in enumerate(isos):
        # This level for the full stream and every prefix.
        net.cfg = dataclasses.replace(base, iso_logit=iso)
        for n in range(1, S + 1):
            try:
                mesh = decode(full, model=net, scales=n, resolution=128)
            except VatError:
                mesh = None
                empty_PI[n - 1, i] = 1
            f_PI[n - 1, i] = decoded_surface_metrics(mesh, ref_unit, norm)["fscore"]
    return f_PI, empty_PI


def choose_levels(f_PI: np.ndarray, empty_PI: np.ndarray, isos: tuple[float, ...]) -> list[float]:
    """Per prefix, the lowest level within TIE of the best F among the levels where no mesh decoded empty.

    An empty decode is an error for the user who asks for that prefix, which a slightly better mean F does not
    pay for; only when every level leaves some mesh empty do all levels compete. The lowest of near-ties gives a
    fuller shape.
    """
    chosen = []
    for f_I, empty_I in zip(f_PI, empty_PI, strict=True):
        ok = [i for i in range(len(isos)) if empty_I[i] == 0] or list(range(len(isos)))
        best = max(f_I[i] for i in ok)
        chosen.append(min(isos[i] for i in ok if f_I[i] >= best - TIE))
    return chosen


def main() -> None:
    ckpt, data = sys.argv[1], sys.argv[2]
    n_meshes = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    isos = tuple(map(float, sys.argv[4].split(","))) if len(sys.argv) > 4 else ISOS
    jobs = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    base = load_model(ckpt).cfg
    S = len(base.scales)
    meshes = val_meshes(data, n_meshes)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        per_mesh = list(pool.map(mesh_scores, [ckpt] * len(meshes), meshes, [isos] * len(meshes)))
    f_PIM = np.stack([f for f, _ in per_mesh], axis=2)  # (prefix, iso, mesh)
    empty_PI = sum(e for _, e in per_mesh)
    f_PI = f_PIM.mean(axis=2)
    chosen = choose_levels(f_PI, empty_PI, isos)
    row = {
        "ckpt": ckpt,
        "meshes": len(meshes),
        "isos": list(isos),
        "full_iso": base.iso_logit,
        "f_by_prefix_iso": [[round(float(x), 4) for x in r] for r in f_PI],
        "f_at_full_iso": [
            round(float(f_PI[n, isos.index(base.iso_logit)]), 4) if base.iso_logit in isos else None
            for n in range(S)
        ],
        "empty_by_prefix_iso": empty_PI.tolist(),
        "chosen": chosen,
        "f_at_chosen": [round(float(f_PI[n, isos.index(chosen[n])]), 4) for n in range(S)],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(row), flush=True)
    print(f"--iso-logit={chosen[-1]} --prefix-iso=" + ",".join(str(x) for x in chosen[:-1]), file=sys.stderr)


if __name__ == "__main__":
    main()
