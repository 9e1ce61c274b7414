"""Training samples from a unit-cube mesh: surface points, query points and occupancy labels."""

from __future__ import annotations

import numpy as np
import trimesh

from vatcodec.geometry.labels import LABEL_BAND, semi_continuous_occupancy  # noqa: F401 (re-exported)
from vatcodec.geometry.occupancy import GRID_HALF_EXTENT, OccupancyOracle

UNIFORM_HALF_EXTENT = GRID_HALF_EXTENT  # uniform queries cover the unit cube plus padding


def _generator(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on the surface with their face normals.

    Returns:
        (points_N3, normals_N3) as float32; normals are unit length and follow face winding.
    """
    rng = _generator(seed)
    tri_F33 = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]
    cross_F3 = np.cross(tri_F33[:, 1] - tri_F33[:, 0], tri_F33[:, 2] - tri_F33[:, 0])
    double_area_F = np.linalg.norm(cross_F3, axis=1)
    cdf_F = np.cumsum(double_area_F)
    # searchsorted on the CDF keeps this O(n log F) and exactly reproducible for a seed.
    face_N = np.searchsorted(cdf_F, rng.random(n) * cdf_F[-1], side="right")
    face_N = np.minimum(face_N, len(cdf_F) - 1)
    r_N2 = rng.random((n, 2))
    fold = r_N2.sum(axis=1) > 1.0
    r_N2[fold] = 1.0 - r_N2[fold]
    t_N33 = tri_F33[face_N]
    points_N3 = (
        t_N33[:, 0] + r_N2[:, :1] * (t_N33[:, 1] - t_N33[:, 0]) + r_N2[:, 1:] * (t_N33[:, 2] - t_N33[:, 0])
    )
    normals_N3 = cross_F3[face_N] / double_area_F[face_N, None]
    return points_N3.astype(np.float32), normals_N3.astype(np.float32)


def sample_queries(
    n_uniform: int,
    n_near: int,
    surface_points_N3: np.ndarray,
    seed: int,
    near_sigmas: tuple[float, ...] = (0.005, 0.02),
) -> np.ndarray:
    """Uniform queries in [-0.55, 0.55]^3 followed by near-surface queries.

    Near-surface queries are surface points (drawn with replacement) plus isotropic Gaussian
    noise, split evenly over ``near_sigmas``.

    Returns:
        (n_uniform + n_near, 3) float32 array: uniform block first, then one block per sigma.
    """
    rng = _generator(seed)
    uniform_U3 = rng.uniform(-UNIFORM_HALF_EXTENT, UNIFORM_HALF_EXTENT, (n_uniform, 3))
    surface = np.asarray(surface_points_N3, dtype=np.float64)
    if n_near and len(surface) == 0:
        raise ValueError("near-surface queries need at least one surface point")
    counts = np.full(len(near_sigmas), n_near // len(near_sigmas))
    counts[: n_near - counts.sum()] += 1
    blocks = [uniform_U3]
    for sigma, count in zip(near_sigmas, counts, strict=True):
        base_M3 = surface[rng.integers(0, len(surface), count)]
        blocks.append(base_M3 + rng.normal(0.0, sigma, (count, 3)))
    return np.concatenate(blocks).astype(np.float32)


def make_sample(
    mesh_unit: trimesh.Trimesh,
    n_surface: int,
    n_uniform: int,
    n_near: int,
    seed: int,
    oracle: OccupancyOracle | None = None,
) -> dict[str, np.ndarray]:
    """One training sample: encoder surface points and labelled query points, all float32.

    Args:
        mesh_unit: Mesh normalized to the unit cube.
        n_surface: Surface points (with normals) for the encoder input.
        n_uniform: Uniform queries in the padded cube.
        n_near: Near-surface queries, drawn around an independent surface sample.
        seed: Seed for every random draw; the same seed gives identical arrays.
        oracle: Precomputed oracle for this mesh, to draw several samples cheaply.

    Returns:
        {"surface_points", "surface_normals", "query_points", "query_sdf", "query_occ"}.
    """
    oracle = oracle if oracle is not None else OccupancyOracle(mesh_unit)
    seed_surface, seed_anchor, seed_query = (int(x) for x in np.random.SeedSequence(seed).generate_state(3))
    points, normals = sample_surface(mesh_unit, n_surface, seed_surface)
    anchors, _ = sample_surface(mesh_unit, max(n_near, 1), seed_anchor)
    queries = sample_queries(n_uniform, n_near, anchors, seed_query)
    sdf = oracle.sdf(queries)
    return {
        "surface_points": points,
        "surface_normals": normals,
        "query_points": queries,
        "query_sdf": sdf.astype(np.float32),
        "query_occ": semi_continuous_occupancy(sdf).astype(np.float32),
    }
