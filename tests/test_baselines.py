"""Tests for vatcodec.baselines: budgets respected, decodes faithful and in the input's frame."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from vatcodec.baselines import (
    VoxelGrid,
    cluster_to_face_count,
    decode_voxels,
    draco_at_budget,
    encode_voxels,
    voxel_at_budget,
    voxel_occupancy,
    voxels_to_mesh,
)
from vatcodec.errors import BitstreamError, MeshError
from vatcodec.geometry.metrics import surface_metrics

needs_draco = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("DracoPy", "fast_simplification")),
    reason="the Draco baseline needs the bench extras (DracoPy, fast-simplification)",
)


def chair() -> trimesh.Trimesh:
    """A chair of separate, touching boxes (open where they meet, like real furniture parts)."""
    parts = [((0.5, 0.05, 0.5), (0.0, 0.0, 0.0)), ((0.5, 0.5, 0.05), (0.0, 0.275, -0.225))]
    for x in (-0.22, 0.22):
        for z in (-0.22, 0.22):
            parts.append(((0.05, 0.45, 0.05), (x, -0.25, z)))
    boxes = [
        trimesh.creation.box(extents=e, transform=trimesh.transformations.translation_matrix(c))
        for e, c in parts
    ]
    return trimesh.util.concatenate(boxes)


def unit_frame(mesh: trimesh.Trimesh, ref: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh`` mapped by the normalization that takes ``ref`` to the unit cube."""
    lo, hi = ref.bounds
    return trimesh.Trimesh((mesh.vertices - (lo + hi) / 2) / (hi - lo).max(), mesh.faces, process=False)


def fscore(result, ref: trimesh.Trimesh) -> float:
    return surface_metrics(unit_frame(result.mesh, ref), unit_frame(ref, ref))["fscore"]


SPHERE = trimesh.creation.icosphere(subdivisions=3, radius=0.5)


@pytest.mark.parametrize("make", [lambda: SPHERE, chair], ids=["sphere", "chair"])
def test_voxel_generous_budget_is_faithful(make):
    mesh = make()
    result = voxel_at_budget(mesh, 8192)
    assert result is not None and result.codec == "voxel" and result.budget == 8192
    assert 0 < result.nbytes <= 8192
    assert fscore(result, mesh) >= 0.95


@needs_draco
@pytest.mark.parametrize("make", [lambda: SPHERE, chair], ids=["sphere", "chair"])
def test_draco_generous_budget_is_faithful(make):
    mesh = make()
    result = draco_at_budget(mesh, 8192)
    assert result is not None and result.codec == "draco"
    assert 0 < result.nbytes <= 8192
    assert result.params["faces"] == len(result.mesh.faces) > 0
    assert fscore(result, mesh) >= 0.95
    assert result.metrics["fscore"] == pytest.approx(fscore(result, mesh))


@needs_draco
def test_draco_small_budget_decimates_within_budget():
    dense = trimesh.creation.icosphere(subdivisions=5, radius=0.5)  # 20k faces, far over 1 KB
    result = draco_at_budget(dense, 1024)
    assert result is not None and result.nbytes <= 1024
    assert result.params["faces"] < len(dense.faces) // 10
    assert fscore(result, dense) >= 0.8  # a sphere survives heavy decimation


def test_vertex_clustering_reaches_a_face_count():
    """The fallback for stalled decimation: at most ``target`` faces, close to it, on the surface."""
    dense = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    for target in (30, 100, 400):
        vertices_V3, faces_F3 = cluster_to_face_count(dense.vertices, dense.faces, target)
        assert target / 4 <= len(faces_F3) <= target
        radii = np.linalg.norm(vertices_V3, axis=1)
        assert radii.max() <= 0.5 + 1e-9 and radii.min() > 0.3  # cluster means lie just inside


def test_voxel_resolution_grows_with_budget():
    mesh = SPHERE  # curved: an axis-aligned chair fits the top resolution in a few hundred bytes
    small, large = voxel_at_budget(mesh, 300), voxel_at_budget(mesh, 3000)
    assert small is not None and large is not None
    assert small.nbytes <= 300 and large.nbytes <= 3000
    assert small.params["res"] < large.params["res"]
    assert fscore(small, mesh) < fscore(large, mesh)


@pytest.mark.parametrize(
    "codec", [voxel_at_budget, pytest.param(draco_at_budget, marks=needs_draco)], ids=["voxel", "draco"]
)
def test_tiny_budgets_give_none_or_a_fitting_result(codec):
    mesh = chair()
    assert codec(mesh, 8) is None  # smaller than any header
    for budget in (40, 64, 128):
        result = codec(mesh, budget)
        assert result is None or (0 < result.nbytes <= budget and len(result.mesh.faces) > 0)


@pytest.mark.parametrize(
    "codec", [voxel_at_budget, pytest.param(draco_at_budget, marks=needs_draco)], ids=["voxel", "draco"]
)
def test_decode_is_in_the_input_frame(codec):
    """Arbitrary scale and offset: the decode lands on the input, and quality does not change."""
    mesh = chair()
    moved = mesh.copy()
    moved.apply_transform(trimesh.transformations.scale_and_translate(37.0, (100.0, -5.0, 3.0)))
    plain, far = codec(mesh, 2048), codec(moved, 2048)
    assert np.allclose(far.mesh.bounds, moved.bounds, atol=0.03 * 37.0)
    assert abs(fscore(far, moved) - fscore(plain, mesh)) < 0.05
    assert far.params == plain.params


@pytest.mark.parametrize(
    "codec", [voxel_at_budget, pytest.param(draco_at_budget, marks=needs_draco)], ids=["voxel", "draco"]
)
def test_deterministic(codec):
    mesh = chair()
    a, b = codec(mesh, 1024), codec(mesh, 1024)
    assert a.nbytes == b.nbytes and a.params == b.params
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)


def test_voxel_payload_round_trips_with_odd_dimensions():
    rng = np.random.default_rng(0)
    occupancy = rng.random((5, 7, 13)) < 0.3  # rows of 13 bits: not byte aligned
    grid = VoxelGrid((5, 7, 13), (1.5, -2.0, 0.25), 0.125)
    data = encode_voxels(occupancy, grid)
    decoded, grid_back = decode_voxels(data)
    np.testing.assert_array_equal(decoded, occupancy)
    assert grid_back == grid
    with pytest.raises(BitstreamError):
        decode_voxels(data[:-3])
    with pytest.raises(BitstreamError):
        decode_voxels(data[:10])


def test_occupancy_fills_closed_solids_and_keeps_open_sheets():
    box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
    grid = VoxelGrid.over_bbox(*box.bounds, 20)
    solid = voxel_occupancy(box, grid)
    assert solid.all()  # every cell of a box's own grid is inside or on it
    # An open cup (box without its top) cannot be filled: only its walls remain.
    cup = box.copy()
    cup.update_faces(cup.face_normals[:, 2] < 0.9)
    cup_grid = VoxelGrid.over_bbox(*box.bounds, 20)
    walls = voxel_occupancy(cup, cup_grid, close=0)
    assert 0.1 < walls.mean() < 0.5
    assert not walls[10, 10, 10]


def test_voxels_to_mesh_places_a_block_in_the_grid_frame():
    occupancy = np.zeros((8, 8, 8), dtype=bool)
    occupancy[2:6, 2:6, 2:6] = True
    grid = VoxelGrid((8, 8, 8), (10.0, 20.0, 30.0), 0.5)
    mesh = voxels_to_mesh(occupancy, grid)
    # The block's outer cell centres lie at origin + (2.5 .. 5.5) * pitch; the surface hugs them.
    centre_lo, centre_hi = np.array([10.0, 20.0, 30.0]) + 2.5 * 0.5, np.array([10.0, 20.0, 30.0]) + 5.5 * 0.5
    assert np.allclose(mesh.bounds[0], centre_lo, atol=0.5 * 0.5)
    assert np.allclose(mesh.bounds[1], centre_hi, atol=0.5 * 0.5)
    assert mesh.is_watertight


@pytest.mark.parametrize(
    "codec", [voxel_at_budget, pytest.param(draco_at_budget, marks=needs_draco)], ids=["voxel", "draco"]
)
def test_meshes_without_surface_are_rejected(codec):
    flat = trimesh.Trimesh(np.zeros((3, 3)), [[0, 1, 2]], process=False)
    with pytest.raises(MeshError):
        codec(flat, 1024)
