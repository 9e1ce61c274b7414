"""Tests for surface/query sampling, the occupancy oracle and semi-continuous labels."""

import numpy as np
import pytest
import trimesh

from vatcodec.geometry.occupancy import DEFAULT_OFFSET, OccupancyOracle, closed_parts, signed_distance
from vatcodec.geometry.sampling import (
    LABEL_BAND,
    make_sample,
    sample_queries,
    sample_surface,
    semi_continuous_occupancy,
)

S = 1.0 / 128


def box_sdf(p_N3, half_extents):
    q = np.abs(p_N3) - np.asarray(half_extents)
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    return outside + np.minimum(q.max(axis=1), 0.0)


def random_points(n, seed=0, half=0.55):
    return np.random.default_rng(seed).uniform(-half, half, (n, 3))


def near_points(mesh, n, sigma, seed=0):
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return pts + np.random.default_rng(seed + 1).normal(0, sigma, pts.shape)


def open_box(half=0.3, drop_face_pairs=(5,)):
    box = trimesh.creation.box(extents=[2 * half] * 3)
    # trimesh boxes store each square side as two consecutive triangles
    keep = np.ones(len(box.faces), bool)
    for k in drop_face_pairs:
        keep[2 * k : 2 * k + 2] = False
    return trimesh.Trimesh(box.vertices, box.faces[keep], process=False)


# ---- semi-continuous labels -------------------------------------------------------------


def test_semi_continuous_formula_at_known_distances():
    sdf = np.array([-1.0, -S, -S / 2, 0.0, S / 4, S, 2 * S, 0.3])
    expected = np.array([1.0, 1.0, 0.75, 0.5, 0.375, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(semi_continuous_occupancy(sdf), expected)
    assert LABEL_BAND == S


def test_semi_continuous_in_unit_interval_and_monotone():
    sdf = np.linspace(-0.1, 0.1, 1001)
    occ = semi_continuous_occupancy(sdf, s=0.01)
    assert occ.min() == 0.0 and occ.max() == 1.0
    assert np.all(np.diff(occ) <= 0)


# ---- surface sampling ------------------------------------------------------------------


def test_sample_surface_deterministic_and_float32():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    a = sample_surface(mesh, 1000, seed=7)
    b = sample_surface(mesh, 1000, seed=7)
    c = sample_surface(mesh, 1000, seed=8)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.float32 and x.shape == (1000, 3)
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_area_weighting_two_parts_one_to_three():
    small = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    big = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    big.vertices *= np.sqrt(3.0)  # three times the area
    big.apply_translation([0.3, 0, 0])
    both = trimesh.util.concatenate([small, big])
    pts, _ = sample_surface(both, 40000, seed=0)
    frac_big = np.mean(pts[:, 0] > 0.15)
    assert frac_big == pytest.approx(0.75, abs=0.01)


def test_samples_lie_on_box_with_matching_unit_normals():
    half = np.array([0.2, 0.3, 0.4])
    box = trimesh.creation.box(extents=2 * half)
    pts, normals = sample_surface(box, 5000, seed=1)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    # each normal is the outward axis of the side the point is on
    axis = np.argmax(np.abs(normals), axis=1)
    on_side = np.abs(pts[np.arange(len(pts)), axis])
    np.testing.assert_allclose(on_side, half[axis], atol=1e-6)
    sign = np.sign(pts[np.arange(len(pts)), axis])
    np.testing.assert_array_equal(np.sign(normals[np.arange(len(pts)), axis]), sign)
    assert np.abs(box_sdf(pts, half)).max() < 1e-6


def test_sphere_normals_match_face_normals():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    pts, normals = sample_surface(sphere, 2000, seed=3)
    _, _, face = trimesh.proximity.closest_point(sphere, pts.astype(np.float64))
    np.testing.assert_allclose(normals, sphere.face_normals[face], atol=1e-5)


# ---- query sampling --------------------------------------------------------------------


def test_sample_queries_layout_and_noise_scales():
    surface = np.zeros((10, 3))
    q = sample_queries(4000, 6000, surface, seed=0, near_sigmas=(0.005, 0.02))
    assert q.shape == (10000, 3) and q.dtype == np.float32
    assert np.abs(q[:4000]).max() <= 0.55
    assert np.abs(q[:4000]).max() > 0.5  # padding is used
    assert q[4000:7000].std() == pytest.approx(0.005, rel=0.05)
    assert q[7000:].std() == pytest.approx(0.02, rel=0.05)
    np.testing.assert_array_equal(q, sample_queries(4000, 6000, surface, seed=0))
    assert not np.array_equal(q, sample_queries(4000, 6000, surface, seed=1))


def test_sample_queries_without_surface_points_fails():
    with pytest.raises(ValueError):
        sample_queries(10, 10, np.zeros((0, 3)), seed=0)


# ---- oracle: exact closed shapes -------------------------------------------------------


def test_box_sdf_exact_sign_and_magnitude():
    half = (0.25, 0.35, 0.15)
    box = trimesh.creation.box(extents=2 * np.asarray(half))
    q = np.concatenate([random_points(3000), near_points(box, 3000, S)])
    got = signed_distance(box, q, resolution=64, offset=0.0)
    np.testing.assert_allclose(got, box_sdf(q, half), atol=1e-9)


def test_sphere_sdf_close_to_analytic_in_label_band():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.35)
    q = near_points(sphere, 4000, S)
    analytic = np.linalg.norm(q, axis=1) - 0.35
    got = OccupancyOracle(sphere, resolution=64, offset=0.0).sdf(q)
    band = np.abs(analytic) < S
    assert band.sum() > 1000
    band &= np.abs(analytic) > 1e-4  # closer than that the facets and the sphere may disagree
    # faceting of the icosphere is the only error source: well below s
    assert np.abs(got - analytic).max() < S / 20
    assert np.all(np.sign(got[band]) == np.sign(analytic[band]))


def test_torus_sign_and_magnitude():
    major, minor = 0.3, 0.08
    torus = trimesh.creation.torus(major, minor, major_sections=128, minor_sections=48)
    q = np.concatenate([random_points(2000), near_points(torus, 2000, 0.01)])
    ring = np.linalg.norm(q[:, :2], axis=1) - major
    analytic = np.hypot(ring, q[:, 2]) - minor
    got = OccupancyOracle(torus, resolution=64, offset=0.0).sdf(q)
    assert np.abs(got - analytic).max() < 1e-3
    clear = np.abs(analytic) > 1e-3
    assert np.all(np.sign(got[clear]) == np.sign(analytic[clear]))
    assert got[np.argmin(np.abs(q[:, 2]) + np.abs(np.linalg.norm(q[:, :2], axis=1)))] > 0


def test_default_offset_shifts_surface_outward():
    box = trimesh.creation.box(extents=[0.5, 0.5, 0.5])
    q = random_points(500)
    plain = signed_distance(box, q, resolution=64, offset=0.0)
    np.testing.assert_allclose(signed_distance(box, q, resolution=64), plain - DEFAULT_OFFSET)


# ---- oracle: broken real-world geometry ------------------------------------------------


def test_open_box_is_an_open_container():
    mesh = open_box()
    q = np.concatenate([random_points(3000), near_points(mesh, 3000, S)])
    sdf = OccupancyOracle(mesh, resolution=64, offset=0.0).sdf(q)
    assert sdf.min() >= 0.0  # no inside: walls are sheets
    occ = semi_continuous_occupancy(sdf)
    assert occ.max() <= 0.5 and occ.min() >= 0.0
    # with the default offset the walls become slabs that marching cubes can keep
    occ_default = semi_continuous_occupancy(OccupancyOracle(mesh, resolution=64).sdf(q))
    on_wall = np.abs(sdf) < 1e-3
    assert np.all(occ_default[on_wall] > 0.5)


def test_single_plane_is_a_sheet():
    plane = trimesh.Trimesh(
        [[-0.4, -0.4, 0], [0.4, -0.4, 0], [0.4, 0.4, 0], [-0.4, 0.4, 0]],
        [[0, 1, 2], [0, 2, 3]],
        process=False,
    )
    q = np.array([[0, 0, 0.01], [0, 0, -0.01], [0.1, 0.2, 0.0], [0, 0, 0.3]])
    sdf = OccupancyOracle(plane, resolution=64, offset=0.0).sdf(q)
    np.testing.assert_allclose(sdf, [0.01, 0.01, 0.0, 0.3], atol=1e-12)


def test_small_cracks_are_sealed_by_the_flood_fill():
    # six separate squares with 2 mm gaps between them: no closed part, but the voxel flood
    # fill (voxel 1.1/64 = 17 mm) cannot get in, so the inside is still inside.
    half, gap = 0.3, 0.002
    parts = []
    for axis in range(3):
        for side in (-1, 1):
            extents = np.full(3, 2 * (half - gap))
            extents[axis] = 1e-9
            square = trimesh.creation.box(extents=extents)
            keep = np.abs(square.face_normals[:, axis]) > 0.5
            square = trimesh.Trimesh(square.vertices, square.faces[keep], process=False)
            square.apply_translation(np.eye(3)[axis] * side * half)
            parts.append(square)
    leaky = trimesh.util.concatenate(parts)
    oracle = OccupancyOracle(leaky, resolution=64, offset=0.0)
    assert len(oracle.closed_faces) == 0
    q = random_points(3000, half=0.5)
    expected = box_sdf(q, (half,) * 3)
    clear = np.abs(expected) > 0.02
    got = oracle.sdf(q)
    assert np.all(np.sign(got[clear]) == np.sign(expected[clear]))
    # just inside a wall, and inside along an edge where two walls' voxel shells overlap
    inner = np.array(
        [
            [0.0, 0.0, half - 0.003],
            [0.05, -0.1, -half + 0.002],
            [-0.17, -half + 0.007, -half + 0.0065],
            [half - 0.006, 0.1, half - 0.007],
        ]
    )
    assert np.all(oracle.sdf(inner) < 0)


def test_thin_closed_rod_below_voxel_size_is_solid():
    rod = trimesh.creation.cylinder(radius=0.003, height=0.8, sections=32)
    oracle = OccupancyOracle(rod, resolution=32, offset=0.0)  # voxel 34 mm, rod 6 mm wide
    inside = oracle.sdf(np.array([[0.0, 0.0, 0.0], [0.001, 0.0, 0.2]]))
    assert np.all(inside < 0)
    assert oracle.sdf(np.array([[0.006, 0.0, 0.0]]))[0] > 0


def test_inverted_and_intersecting_closed_parts():
    a = trimesh.creation.box(extents=[0.4, 0.4, 0.4])
    b = trimesh.creation.box(extents=[0.4, 0.4, 0.4])
    b.apply_translation([0.2, 0.2, 0.0])
    b.invert()  # wrong winding must not turn the part inside out
    union = trimesh.util.concatenate([a, b])
    vertices, faces = closed_parts(union.vertices, union.faces)
    assert len(faces) == 24
    oracle = OccupancyOracle(union, resolution=64, offset=0.0)
    q = np.array([[-0.1, -0.1, 0.0], [0.3, 0.3, 0.0], [0.1, 0.1, 0.0], [0.35, -0.1, 0.0]])
    assert list(oracle.sdf(q) < 0) == [True, True, True, False]


def test_closed_parts_rejects_open_and_inconsistent_parts():
    box = trimesh.creation.box()
    assert len(closed_parts(box.vertices, box.faces)[1]) == 12
    assert len(closed_parts(*(lambda m: (m.vertices, m.faces))(open_box()))[1]) == 0
    faces = box.faces.copy()
    faces[0] = faces[0][::-1]  # one flipped triangle: not consistently wound
    assert len(closed_parts(box.vertices, faces)[1]) == 0


# ---- make_sample -----------------------------------------------------------------------


def test_make_sample_contents_and_determinism():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    oracle = OccupancyOracle(sphere, resolution=64)
    a = make_sample(sphere, 512, 1000, 1000, seed=5, oracle=oracle)
    b = make_sample(sphere, 512, 1000, 1000, seed=5, oracle=oracle)
    c = make_sample(sphere, 512, 1000, 1000, seed=6, oracle=oracle)
    shapes = {
        "surface_points": (512, 3),
        "surface_normals": (512, 3),
        "query_points": (2000, 3),
        "query_sdf": (2000,),
        "query_occ": (2000,),
    }
    assert {k: v.shape for k, v in a.items()} == shapes
    for key in shapes:
        assert a[key].dtype == np.float32
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["query_points"], c["query_points"])
    np.testing.assert_allclose(a["query_occ"], semi_continuous_occupancy(a["query_sdf"]), atol=1e-6)
    assert 0.0 <= a["query_occ"].min() and a["query_occ"].max() <= 1.0
    # near-surface queries straddle the label band; uniform ones are mostly saturated
    near_occ = a["query_occ"][1000:]
    assert np.mean((near_occ > 0) & (near_occ < 1)) > 0.3
    # sign agrees with the analytic sphere (default offset included)
    radius = np.linalg.norm(a["query_points"], axis=1)
    clear = np.abs(radius - 0.4) > 0.01
    assert np.all((a["query_sdf"][clear] < 0) == (radius[clear] < 0.4))


def test_make_sample_builds_its_own_oracle():
    box = trimesh.creation.box(extents=[0.6, 0.6, 0.6])
    sample = make_sample(box, 64, 200, 200, seed=0)
    pts = sample["query_points"].astype(np.float64)
    np.testing.assert_allclose(sample["query_sdf"], box_sdf(pts, (0.3,) * 3) - DEFAULT_OFFSET, atol=1e-6)
