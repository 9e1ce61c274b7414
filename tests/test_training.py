"""The tokenizer learns: a tiny config overfits one torus; resume is exact; two gloo ranks stay identical."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from training.data import INDEX_NAME, BatchSampler, ShapeCache, write_shard
from training.tokenizer import TrainArgs, train

ROOT = Path(__file__).resolve().parents[1]
R_MAJOR, R_MINOR = 0.3, 0.12


def torus_sdf(p_N3: np.ndarray) -> np.ndarray:
    q = np.stack([np.linalg.norm(p_N3[:, [0, 2]], axis=1) - R_MAJOR, p_N3[:, 1]], axis=1)
    return np.linalg.norm(q, axis=1) - R_MINOR


def analytic_sample(mesh: trimesh.Trimesh, sdf, seed: int, n: int) -> dict[str, np.ndarray]:
    """A cache row of a shape with a known sdf: surface points, then n uniform and n near-surface queries."""
    rng = np.random.default_rng(seed)
    pts, face = trimesh.sample.sample_surface(mesh, 4096, seed=seed)
    near = pts[rng.integers(0, len(pts), n)] + rng.normal(0, 0.01, (n, 3))
    queries = np.concatenate([rng.uniform(-0.55, 0.55, (n, 3)), near]).astype(np.float32)
    return {
        "surface_points": pts,
        "surface_normals": mesh.face_normals[face],
        "query_points": queries,
        "query_sdf": sdf(queries),
    }


def torus_sample(seed: int) -> dict[str, np.ndarray]:
    mesh = trimesh.creation.torus(R_MAJOR, R_MINOR, major_sections=64, minor_sections=32)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # axis along y
    return analytic_sample(mesh, torus_sdf, seed, 6000)


def write_cache(root: Path, n_shapes: int = 1) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_shard(root / "shard-00000.safetensors", [torus_sample(i) for i in range(n_shapes)])
    shapes = [
        {"name": f"torus{i}", "shard": "shard-00000.safetensors", "row": i, "split": s}
        for i in range(n_shapes)
        for s in ("train", "val")
    ]
    (root / INDEX_NAME).write_text(json.dumps({"n_uniform": 6000, "shapes": shapes}))


def tiny_args(tmp_path: Path, **kw) -> TrainArgs:
    base = dict(
        data=str(tmp_path / "cache"),
        out=str(tmp_path / "run"),
        config="vat-tiny",
        steps=40,
        stage1_steps=20,
        batch_size=2,
        num_queries=1024,
        lr=2e-3,
        warmup=10,
        val_every=0,
        ckpt_every=10,
        log_every=10,
        augment=False,
        val_shapes=1,
        dead_code_age=20,
    )
    base.update(kw)
    return TrainArgs(**base)


def sphere_cache(root: Path, centre, radius: float, normals_N3, queries_M3, n_uniform: int) -> ShapeCache:
    """A one-shape training cache of a sphere with its exact signed distance."""
    sample = {
        "surface_points": centre + radius * normals_N3,
        "surface_normals": normals_N3,
        "query_points": queries_M3,
        "query_sdf": np.linalg.norm(queries_M3 - centre, axis=1) - radius,
    }
    root.mkdir()
    write_shard(root / "shard-00000.safetensors", [sample])
    shape = {"name": "sphere", "shard": "shard-00000.safetensors", "row": 0, "split": "train"}
    (root / INDEX_NAME).write_text(json.dumps({"n_uniform": n_uniform, "shapes": [shape]}))
    return ShapeCache.load(root)


def test_sampler_is_deterministic_and_augmentation_keeps_labels(tmp_path):
    # An off-centre sphere: any augmentation that moved the queries differently from the surface (or a flip of
    # the up axis) would break |sdf| == distance to the augmented surface.
    rng = np.random.default_rng(0)
    centre, radius = np.array([0.2, 0.1, -0.15]), 0.15
    normals = rng.normal(size=(2048, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.concatenate([normals, -normals])  # antipodal pairs: the points' mean is the centre exactly
    queries = centre + rng.normal(size=(4000, 3)) * 0.1
    cache = sphere_cache(tmp_path / "cache", centre, radius, normals, queries, 2000)
    s = BatchSampler(cache, batch_size=4, num_points=4096, num_queries=512, seed=3)
    a, b = s.batch(5), s.batch(5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for i in range(4):
        surf, q = a["surface_points"][i].numpy(), a["query_points"][i].numpy()
        c = surf.mean(axis=0)
        assert np.allclose(np.linalg.norm(q - c, axis=1) - radius, a["query_sdf"][i].numpy(), atol=2e-3)
        assert abs(c[1] - centre[1]) < 1e-3  # the up axis is never flipped
        assert np.allclose(a["surface_normals"][i].numpy(), (surf - c) / radius, atol=2e-3)
    assert len({tuple(np.round(a["surface_points"][i].numpy().mean(0), 2)) for i in range(4)}) > 1


def test_stretch_keeps_inside_outside_and_the_unit_cube(tmp_path):
    # An off-centre sphere becomes an ellipsoid: a query is inside it exactly when its label says so, the
    # normals are the ellipsoid's, and the longest side stays what it was.
    rng = np.random.default_rng(1)
    centre, radius = np.array([0.1, -0.05, 0.0]), 0.3
    normals = rng.normal(size=(4096, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    queries = np.concatenate([rng.uniform(-0.55, 0.55, (3000, 3)), centre + radius * normals[:3000] * 1.02])
    cache = sphere_cache(tmp_path / "cache", centre, radius, normals, queries, 3000)
    with pytest.raises(ValueError, match="stretch"):
        BatchSampler(cache, 1, 4096, 1024, stretch=1.0)
    s = BatchSampler(
        cache, batch_size=4, num_points=4096, num_queries=1024, seed=0, augment=False, stretch=0.3
    )
    b = s.batch(0)
    moved = 0
    for i in range(4):
        surf, q = b["surface_points"][i].numpy(), b["query_points"][i].numpy()
        lo, hi = surf.min(0), surf.max(0)
        c, semi = (lo + hi) / 2, (hi - lo) / 2
        assert np.isclose((hi - lo).max(), 2 * radius, atol=1e-3)  # longest side restored
        assert np.abs(q[:512]).max() <= 0.55 + 1e-6  # uniform queries stay in the query cube
        inside = np.linalg.norm((q - c) / semi, axis=1) < 1
        sdf = b["query_sdf"][i].numpy()
        clear = np.abs(np.linalg.norm((q - c) / semi, axis=1) - 1) > 1e-3  # sign is ill-posed on the surface
        assert np.array_equal(inside[clear], sdf[clear] < 0)
        n_want = (surf - c) / semi**2
        n_want /= np.linalg.norm(n_want, axis=1, keepdims=True)
        assert np.allclose(b["surface_normals"][i].numpy(), n_want, atol=1e-3)
        moved += not np.allclose(semi, semi[0], atol=1e-3)
    assert moved == 4  # every shape was stretched, each differently


def test_overfits_one_torus(tmp_path):
    write_cache(tmp_path / "cache")
    t = time.time()
    # The trajectory depends on the thread count: on the 2-core CI CPU, 400 steps reach IoU 0.944 on one thread
    # and 0.899 on two (the idle CI machine's default, which failed a 0.9 bar). One thread makes the run the
    # same on every machine of a kind; 0.85 leaves room for other CPUs' kernels; at steps 100-200 the IoU is 0.0-0.3.
    m = train(tiny_args(tmp_path, steps=400, stage1_steps=200, ckpt_every=400, log_every=50, threads=1))
    seconds = time.time() - t
    print(f"overfit: val IoU {m['val_iou']:.3f} after 400 steps in {seconds:.1f} s")
    assert m["val_iou"] >= 0.85, m
    assert m["val_prefix_iou"][-1] >= 0.85


def test_resume_is_exact(tmp_path):
    write_cache(tmp_path / "cache")
    full = train(tiny_args(tmp_path, out=str(tmp_path / "a")))
    train(tiny_args(tmp_path, out=str(tmp_path / "b"), stop_at=30))  # interrupted in stage 2
    resumed = train(tiny_args(tmp_path, out=str(tmp_path / "b")))
    assert resumed["rank_weight_digests"] == full["rank_weight_digests"]


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun gloo run exercised on Linux CI")
def test_two_rank_ddp_keeps_weights_identical(tmp_path):
    """Two ranks resume a one-process run (a run may move to torchrun when cores free up) and stay identical."""
    write_cache(tmp_path / "cache", n_shapes=2)
    torchrun = [
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port: a fixed one can collide with another run on the machine
        "--nproc_per_node",
        "2",
    ]
    args = [
        "-m",
        "training.tokenizer",
        "--data",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "run"),
        "--config",
        "vat-tiny",
        "--steps",
        "6",
        "--stage1-steps",
        "3",
        "--batch-size",
        "1",
        "--num-queries",
        "256",
        "--val-every",
        "0",
        "--ckpt-every",
        "3",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    one = [sys.executable, *args, "--stop-at", "3"]
    r = subprocess.run(one, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(
        [sys.executable, *torchrun, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "at step 3 (saved by 1 rank(s), now 2)" in " ".join(r.stderr.split())  # rich wraps long lines
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    digests = rows[-1]["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]


def test_prepare_never_lists_the_test_split(tmp_path):
    from training.prepare import find_meshes

    for lib in ("katorlegaz", "scopia"):
        (tmp_path / lib / "m").mkdir(parents=True)
        trimesh.creation.box().export(tmp_path / lib / "m" / "m.obj")
    names = [n for n, _ in find_meshes([tmp_path], ["katorlegaz"])]
    assert names == ["scopia/m/m.obj"]
    assert find_meshes([tmp_path / "katorlegaz"], ["katorlegaz"]) == []  # the root itself is the test split
    assert find_meshes([tmp_path / "katorlegaz" / "m" / "m.obj"], ["katorlegaz"]) == []


def test_bad_stretch_is_refused_before_the_run_folder_is_written(tmp_path):
    write_cache(tmp_path / "cache")
    with pytest.raises(ValueError, match=r"--stretch must be in \[0, 1\), got 1.5"):
        train(tiny_args(tmp_path, stretch=1.5))
    assert not (tmp_path / "run").exists()
