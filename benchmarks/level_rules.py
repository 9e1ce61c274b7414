"""Cheap rules for a file's surface level against the quick-F search, on per-mesh rows (docs/tokenizer.md).

PYTHONPATH=. python benchmarks/level_rules.py MESH_FOLDER --out ROWS.jsonl [--model CKPT] [--resolution 128]

The level search (`encode(level_search=True)`) costs a few quick decodes and F-scores per file. This asks whether
something cheaper picks as well: per mesh it decodes the effort-0 tokens once on a dense grid, then records, for
surface-level offsets of -12..12 sixteenths of a logit, the quick F (marching cubes at `--resolution`, 10k / 100k
samples), the decoded surface's L1-projected area (sign changes along the grid axes), its inside fraction, and
accuracy / IoU on 8192 uniform and 8192 near-surface labelled queries. Rows are appended (a rerun resumes); then
each rule's pick is scored by the quick F against offset 0, printed and written to summary.json beside the rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

from benchmarks.effort import find_meshes
from vatcodec.codec.extract import GridSpec, dense_grid, grid_to_mesh
from vatcodec.codec.level import LEVEL_COARSE, LEVEL_FINE
from vatcodec.codec.models import resolve_model
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
from vatcodec.geometry.metrics import surface_metrics
from vatcodec.geometry.sampling import make_sample, sample_surface

OFFSETS = tuple(range(-12, 13, 2))  # sixteenths of a logit, as bitstream extension 2 stores them
N_UNIFORM = N_NEAR = 8192


def probe(path: Path, net, resolution: int) -> dict:
    """Quick F and the cheap features at every offset, for one mesh's effort-0 tokens."""
    unit, _ = normalize_mesh(load_mesh(path))
    points_N3, normals_N3 = sample_surface(unit, net.cfg.input_points, 0)
    surface_1N6 = torch.from_numpy(np.concatenate([points_N3, normals_N3], 1).astype(np.float32))[None]
    s = make_sample(unit, 1, N_UNIFORM, N_NEAR, 1234)
    with torch.inference_mode():
        field = net.decode(net.encode(surface_1N6))
        values, _ = dense_grid(field, resolution)
        logits_M = field(torch.from_numpy(s["query_points"])[None])[0].numpy()
    occ_M = s["query_occ"].reshape(-1) > 0.5
    spec = GridSpec(resolution)
    row = {
        "area_l1": float((unit.area_faces * np.abs(unit.face_normals).sum(1)).sum()),
        "inside_true": float(occ_M[:N_UNIFORM].mean()),
    }
    for k in OFFSETS:
        level = k / 16
        inside = values >= level
        crossings = sum(int(np.count_nonzero(np.diff(inside, axis=a))) for a in range(3))
        vertices_N3, faces_F3 = grid_to_mesh(values, spec, level=level)
        f = 0.0
        if len(faces_F3):
            pred = trimesh.Trimesh(vertices_N3, faces_F3, process=False)
            f = float(surface_metrics(pred, unit, n_query=10_000, n_ref=100_000)["fscore"])
        pred_M = logits_M >= level
        u, n = slice(0, N_UNIFORM), slice(N_UNIFORM, None)
        union = np.logical_or(pred_M[u], occ_M[u]).sum()
        for key, value in (
            ("f", f),
            ("area_l1_pred", crossings * spec.spacing**2),
            ("inside", float(inside.mean())),
            ("acc_near", float((pred_M[n] == occ_M[n]).mean())),
            ("iou_uniform", float(np.logical_and(pred_M[u], occ_M[u]).sum() / max(union, 1))),
        ):
            row.setdefault(key, []).append(value)
    return row


def closest(values: list[float], target: float) -> int:
    return int(np.argmin(np.abs(np.log(np.maximum(values, 1e-9)) - np.log(target))))


def searched(row: dict) -> int:
    """The codec's search, replayed on the row's quick Fs (`level.choose_level`: coarse candidates, then fine)."""
    f = dict(zip(OFFSETS, row["f"], strict=True))
    coarse = (0, *LEVEL_COARSE)
    best = max(coarse, key=lambda k: (f[k], -abs(k)))
    fine = (best, *(best + d for d in LEVEL_FINE))
    if not set(coarse + fine) <= set(OFFSETS):
        raise ValueError(f"OFFSETS must hold the search's candidates {sorted(set(coarse + fine))}")
    return OFFSETS.index(max(fine, key=lambda k: (f[k], -abs(k))))


RULES = {
    "search (quick F, as committed)": searched,
    "L1 area matches the input's": lambda r: closest(r["area_l1_pred"], r["area_l1"]),
    "L1 area matches 0.8 x the input's": lambda r: closest(r["area_l1_pred"], 0.8 * r["area_l1"]),
    "inside fraction matches the labels'": lambda r: closest(r["inside"], r["inside_true"]),
    "inside fraction matches 1.2 x the labels'": lambda r: closest(r["inside"], 1.2 * r["inside_true"]),
    "best near-surface accuracy": lambda r: int(np.argmax(r["acc_near"])),
    "best uniform IoU": lambda r: int(np.argmax(r["iou_uniform"])),
    "best uniform IoU, then +1/8": lambda r: min(int(np.argmax(r["iou_uniform"])) + 1, len(OFFSETS) - 1),
}


def score(rows: list[dict]) -> list[dict]:
    """Mean quick F of each rule's pick, its gain over offset 0 with a standard error, meshes better / worse."""
    F_NK = np.array([r["f"] for r in rows])
    base_N = F_NK[:, OFFSETS.index(0)]
    out = [{"rule": "offset 0 (the model's level)", "f": float(base_N.mean())}]
    out.append({"rule": "per-mesh best (oracle)", "f": float(F_NK.max(1).mean())})
    for name, pick in RULES.items():
        f_N = F_NK[np.arange(len(rows)), [pick(r) for r in rows]]
        d_N = f_N - base_N
        out.append({
            "rule": name, "f": float(f_N.mean()), "gain": float(d_N.mean()),
            "se": float(d_N.std(ddof=1) / np.sqrt(len(d_N))),
            "better": int((d_N > 1e-9).sum()), "worse": int((d_N < -1e-9).sum()),
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = resolve_model(args.model, "cpu")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = (
        {json.loads(line)["mesh"] for line in args.out.read_text().splitlines()}
        if args.out.exists()
        else set()
    )
    for path in find_meshes(args.folder, 0):
        name = str(path.relative_to(args.folder))
        if name in done:
            continue
        t = time.perf_counter()
        row = {"mesh": name, **probe(path, net, args.resolution)}
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{name}: F at offset 0 {row['f'][OFFSETS.index(0)]:.3f}, best {max(row['f']):.3f},"
              f" {time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
    rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    print(f"{len(rows)} meshes")
    scores = score(rows)
    args.out.with_name("summary.json").write_text(
        json.dumps({"meshes": len(rows), "rules": scores}, indent=1)
    )
    for r in scores:
        extra = (
            f"  {r['gain']:+.4f} +- {r['se']:.4f}, {r['better']} better / {r['worse']} worse"
            if "gain" in r
            else ""
        )
        print(f"{r['rule']:44s} F {r['f']:.4f}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
