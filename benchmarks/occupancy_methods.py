"""Compare inside/outside methods for non-watertight meshes on real furniture (docs/occupancy.md).

Example (the run behind docs/occupancy.md; never point it at the test split):
    python benchmarks/occupancy_methods.py --corpus /work/corpus/lib --slices /tmp/occ_slices

For each mesh it draws 20k uniform queries in [-0.55, 0.55]^3 and 20k near-surface queries
(Gaussian noise 0.005 and 0.02), runs every method, and prints a markdown table: seconds (per-mesh
setup plus all queries), inside fraction of the uniform queries, sign agreement with the oracle
in the label band |d| < 1/128, and the mean magnitude error in that band against the exact
unsigned distance. Slice images (y=0 and x=0 planes) go to --slices for visual checks.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import igl
import mesh2sdf
import numpy as np
import scipy.ndimage as ndi
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh  # noqa: E402
from vatcodec.geometry.occupancy import GRID_HALF_EXTENT, OccupancyOracle  # noqa: E402

DEFAULT_MESHES = (
    "blendswap-cc-0/armchair blendswap-cc-0/bookcase blendswap-cc-0/desklamp "
    "blendswap-cc-0/decorativePlant blendswap-cc-0/tableWithTablecloth blendswap-cc-0/umbrella "
    "blendswap-cc-0/oakChair scopia/office_chair scopia/curtain scopia/bonsai-tree "
    "scopia/iron_bed scopia/hammock scopia/step-ladder-metal scopia/leather_sofa"
).split()
BAND = 1.0 / 128
RAY_POINTS = 2000  # trimesh's rtree ray test needs ~0.2 MB per query and is slow: keep it small


def unsigned_distance(v, f, q):
    d2, _, _ = igl.point_mesh_squared_distance(q, v, f)
    return np.sqrt(np.maximum(d2, 0.0))


def method_mesh2sdf(mesh, q, res=128):
    """mesh2sdf fix=True: UDF grid, level-set shell, largest component, re-signed grid."""
    k = 1.0 / GRID_HALF_EXTENT  # mesh2sdf wants [-1, 1]; its voxel i sits at i*2/res - 1
    sdf, repaired = mesh2sdf.compute(
        mesh.vertices * k, mesh.faces, size=res, fix=True, level=2.0 / res, return_mesh=True
    )
    idx_3N = ((q * k + 1.0) * res / 2.0).T
    value = ndi.map_coordinates(sdf, idx_3N, order=1, mode="nearest") / k
    repaired_extent = np.ptp(repaired.vertices, axis=0).max() / k
    return value, f"repaired extent {repaired_extent:.2f}"


def method_fwn(mesh, q):
    """Generalized winding number > 0.5 for the sign, exact distance for the magnitude."""
    v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    w = igl.fast_winding_number(v, f, q)
    return np.where(w > 0.5, -1.0, 1.0) * unsigned_distance(v, f, q), ""


def method_ray(mesh, q):
    """trimesh.contains (ray parity with the rtree engine) on a small subset."""
    v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    inside = mesh.contains(q)
    return np.where(inside, -1.0, 1.0) * unsigned_distance(v, f, q), f"{len(q)} points only"


def method_oracle(mesh, q, res=128):
    oracle = OccupancyOracle(mesh, resolution=res, offset=0.0)
    return oracle.sdf(q), f"{len(oracle.closed_faces)} faces in closed parts"


def sheet_fraction(mesh, delta=0.002, n=4000):
    """Share of the surface area with outside on both sides within 2 mm: zero-thickness sheets
    (or parts thinner than 4 mm), which vanish from the labels without an offset."""
    pts, face = trimesh.sample.sample_surface(mesh, n, seed=1)
    normals = mesh.face_normals[face]
    oracle = OccupancyOracle(mesh, offset=0.0)
    both = oracle.sdf(np.concatenate([pts + delta * normals, pts - delta * normals]))
    return float(np.mean((both[:n] > 0) & (both[n:] > 0)))


METHODS = {
    "oracle-128": method_oracle,  # first: the others' sign agreement is measured against it
    "oracle-256": lambda m, q: method_oracle(m, q, 256),
    "mesh2sdf-fix": method_mesh2sdf,
    "fwn": method_fwn,
    "ray": method_ray,
}


def make_queries(mesh, seed=0):
    rng = np.random.Generator(np.random.PCG64(seed))
    uniform = rng.uniform(-GRID_HALF_EXTENT, GRID_HALF_EXTENT, (20000, 3))
    surf, _ = trimesh.sample.sample_surface(mesh, 20000, seed=seed)
    sigma = np.where(np.arange(20000) < 10000, 0.005, 0.02)[:, None]
    return np.concatenate([uniform, surf + rng.normal(size=surf.shape) * sigma])


def slice_points(n=240):
    c = np.linspace(-GRID_HALF_EXTENT, GRID_HALF_EXTENT, n)
    a, b = np.meshgrid(c, c, indexing="ij")
    zero = np.zeros_like(a)
    return np.concatenate([np.stack(s, -1).reshape(-1, 3) for s in ((a, zero, b), (zero, a, b))])


def save_slices(path, name, results, n=240):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, len(results), figsize=(4 * len(results), 8), squeeze=False)
    for j, (method, values) in enumerate(results.items()):
        for r in range(2):
            img = values[r * n * n : (r + 1) * n * n].reshape(n, n).T
            ax[r, j].imshow(img, cmap="RdBu", origin="lower", vmin=-0.02, vmax=0.02)
            ax[r, j].contour((img < 0).astype(float), levels=[0.5], colors="k", linewidths=0.4)
            ax[r, j].set_title(method, fontsize=9)
            ax[r, j].axis("off")
    fig.suptitle(f"{name}: y=0 (top), x=0 (bottom); red inside")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="/work/corpus/lib")
    parser.add_argument("--meshes", nargs="*", default=DEFAULT_MESHES, help="library/name")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--slices", default="", help="folder for slice PNGs (empty: none)")
    parser.add_argument("--max-gib", type=float, default=10.0, help="address-space cap")
    args = parser.parse_args(argv)
    cap = int(args.max_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    methods = args.methods.split(",")
    if args.slices:
        Path(args.slices).mkdir(parents=True, exist_ok=True)
    print("| mesh | faces | method | seconds | inside | band sign agree | band abs err | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in args.meshes:
        if entry.startswith("katorlegaz"):
            raise SystemExit("katorlegaz is the test split: not for method comparisons")
        lib, name = entry.split("/")
        mesh, _ = normalize_mesh(load_mesh(Path(args.corpus) / lib / lib / name / f"{name}.obj"))
        q = make_queries(mesh)
        grid = slice_points() if args.slices else np.zeros((0, 3))
        qq = np.concatenate([q, grid])
        v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
        f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
        exact = unsigned_distance(v, f, q)
        band = exact < BAND
        reference = None
        slices = {}
        for method in methods:
            pts = q[:RAY_POINTS] if method == "ray" else qq
            start = time.perf_counter()
            try:
                values, note = METHODS[method](mesh, pts)
            except MemoryError:
                print(f"| {entry} | {len(f)} | {method} | - | - | - | - | out of memory |")
                continue
            seconds = time.perf_counter() - start
            if method == "ray":
                seconds *= len(q) / RAY_POINTS
                note += f"; seconds scaled to {len(q)}"
            vq = values[: len(q)]
            n_u = min(20000, len(vq))
            inside = float(np.mean(vq[:n_u] < 0))
            if method.startswith("oracle") and reference is None:
                reference = vq
            sub_band = band[: len(vq)]
            agree = (
                float(np.mean((vq[sub_band] < 0) == (reference[: len(vq)][sub_band] < 0)))
                if reference is not None and sub_band.any()
                else float("nan")
            )
            err = float(np.mean(np.abs(np.abs(vq[sub_band]) - exact[: len(vq)][sub_band])))
            if method == "oracle-128":
                note += f"; sheet area {sheet_fraction(mesh):.0%}"
            print(
                f"| {entry} | {len(f)} | {method} | {seconds:.2f} | {inside:.3f} | "
                f"{agree:.3f} | {err:.5f} | {note} |",
                flush=True,
            )
            if args.slices and method != "ray":
                slices[method] = values[len(q) :]
        if args.slices and slices:
            save_slices(Path(args.slices) / f"{name}.png", entry, slices)


if __name__ == "__main__":
    main()
