"""Coarse-to-fine occupancy evaluation: same mesh as a dense grid, far fewer queries, closed outward meshes."""

import numpy as np
import pytest
import torch
import trimesh

from vatcodec.codec.extract import (
    FieldCache,
    GridSpec,
    dense_grid,
    extract_mesh,
    grid_to_mesh,
    occupancy_grid,
)


def sphere_sdf(p, center, radius):
    return (p - torch.tensor(center)).norm(dim=-1) - radius


def torus_sdf(p, major, minor):
    ring = torch.stack([torch.sqrt(p[..., 0] ** 2 + p[..., 2] ** 2) - major, p[..., 1]], dim=-1)
    return ring.norm(dim=-1) - minor


def box_sdf(p, center, half):
    q = (p - torch.tensor(center)).abs() - torch.tensor(half)
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


def capsule_sdf(p, a, b, radius):
    a, b = torch.tensor(a), torch.tensor(b)
    h = (((p - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum()).clamp(0, 1)
    return (p - a - h[..., None] * (b - a)).norm(dim=-1) - radius


# Fields are occupancy-like: positive inside, as the decoder's logits.
def sphere_torus(p):
    return -torch.minimum(sphere_sdf(p, (0.12, 0.03, -0.05), 0.22), torus_sdf(p, 0.3, 0.07))


def thin_plate(p):
    # 0.04 thick: just over the spacing of a 32-cell coarse grid, so the coarse grid always sees it.
    return -box_sdf(p, (0.013, -0.071, 0.02), (0.41, 0.02, 0.33))


def sphere_with_rod(p):
    # A rod 0.016 thick, half a 16-cell coarse spacing, off the coarse grid lines: only following it
    # from the sphere it touches finds it.
    rod = capsule_sdf(p, (0.0, 0.011, 0.013), (0.45, 0.011, 0.013), 0.008)
    return -torch.minimum(sphere_sdf(p, (-0.2, 0.0, 0.0), 0.25), rod)


class Counting:
    """Wraps a field and counts the points it is asked about."""

    def __init__(self, field):
        self.field, self.points = field, 0

    def __call__(self, points_BM3):
        self.points += points_BM3.shape[0] * points_BM3.shape[1]
        return self.field(points_BM3)


def assert_same_mesh(a, b):
    (va, fa), (vb, fb) = a, b
    assert len(fa) > 0 and fa.shape == fb.shape and np.array_equal(fa, fb)
    np.testing.assert_allclose(va, vb, atol=1e-6)


@pytest.mark.parametrize(
    "field, resolution, coarse",
    [(sphere_torus, 64, 16), (thin_plate, 64, 32), (sphere_with_rod, 128, 16), (sphere_torus, 50, 16)],
    ids=["sphere+torus", "thin-plate", "rod-off-the-coarse-grid", "resolution-not-c*2^k"],
)
def test_hierarchical_mesh_equals_dense(field, resolution, coarse):
    spec = GridSpec(resolution)
    dense, dense_stats = dense_grid(field, resolution)
    counted = Counting(field)
    values, stats = occupancy_grid(counted, resolution, coarse=coarse)
    assert_same_mesh(grid_to_mesh(values, spec), grid_to_mesh(dense, spec))
    assert stats.evaluated == counted.points
    assert dense_stats.evaluated == (resolution + 1) ** 3
    assert counted.points < 0.4 * dense_stats.evaluated


def test_queries_are_a_small_fraction_of_the_grid():
    counted = Counting(sphere_torus)
    vertices, faces = extract_mesh(counted, resolution=128)
    assert len(faces) > 10_000
    assert counted.points < 0.1 * 129**3


def test_sphere_is_closed_outward_and_accurate():
    vertices, faces = extract_mesh(lambda p: -sphere_sdf(p, (0.1, -0.05, 0.0), 0.3), resolution=64)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.3**3, rel=0.02)  # positive: normals point out
    radii = np.linalg.norm(vertices - [0.1, -0.05, 0.0], axis=1)
    assert np.abs(radii - 0.3).max() < 0.3 * GridSpec(64).spacing


def test_shape_filling_the_grid_is_closed_at_the_boundary():
    vertices, faces = extract_mesh(lambda p: torch.ones(p.shape[:2]), resolution=32)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    assert mesh.is_watertight and mesh.volume > 1.0
    spec = GridSpec(32)
    assert np.abs(vertices).max() <= 0.5 + spec.padding + 1e-9


def test_empty_field_gives_no_faces():
    counted = Counting(lambda p: -torch.ones(p.shape[:2]))
    vertices, faces = extract_mesh(counted, resolution=128)
    assert len(vertices) == 0 and len(faces) == 0
    assert counted.points == 33**3  # only the coarse grid: nothing to refine


def test_level_shifts_the_surface():
    field = lambda p: 0.3 - p.norm(dim=-1)  # noqa: E731
    vertices, _ = extract_mesh(field, resolution=64, level=0.1)
    assert np.linalg.norm(vertices, axis=1).mean() == pytest.approx(0.2, abs=0.005)


def test_sparse_closure_looks_only_near_what_it_evaluates():
    """The bookkeeping follows the evaluated points: each closure round checks at most 8 cells per new point."""
    counted = Counting(sphere_with_rod)
    values, stats = occupancy_grid(counted, 128, coarse=16)
    assert stats.evaluated == counted.points  # every point sent to the field is reported, and no more
    assert stats.closure_rounds > 3  # the rod is followed round by round
    boundary = 6 * 129**2
    assert 0 < stats.cells_checked <= 8 * (stats.evaluated + boundary)
    assert stats.cells_checked < 0.5 * 128**3


def test_dilation_matches_the_26_neighbourhood():
    from vatcodec.codec.extract import _dilate26

    rng = np.random.default_rng(0)
    mask = rng.random((17, 12, 9)) > 0.97
    got = _dilate26(mask, 2)
    idx = np.argwhere(mask)
    want = np.zeros_like(mask)
    for i, j, k in idx:
        want[max(i - 2, 0) : i + 3, max(j - 2, 0) : j + 3, max(k - 2, 0) : k + 3] = True
    assert np.array_equal(got, want)


def test_a_cache_shared_between_levels_gives_the_same_meshes_for_a_fraction_of_the_points():
    levels = (0.0, -0.04, -0.02, 0.02, 0.04, -0.01, 0.01)  # the level search's pattern, in this field's units
    plain = Counting(sphere_torus)
    expected = [extract_mesh(plain, resolution=128, level=lv) for lv in levels]
    cached = Counting(sphere_torus)
    cache = FieldCache(cached, 128)
    for lv, mesh in zip(levels, expected, strict=True):
        assert_same_mesh(extract_mesh(cached, resolution=128, level=lv, cache=cache), mesh)
    assert cached.points < 0.35 * plain.points  # the levels' near-surface points overlap
    with pytest.raises(ValueError, match="FieldCache"):
        extract_mesh(cached, resolution=64, cache=cache)  # another grid
    with pytest.raises(ValueError, match="FieldCache"):
        extract_mesh(Counting(sphere_torus), resolution=128, cache=cache)  # another field
