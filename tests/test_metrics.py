"""Tests for vatcodec.geometry.metrics: analytic surface cases, self-score noise, occupancy, CS-IoU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from vatcodec.errors import MeshError
from vatcodec.geometry.metrics import (
    closest_point_on_triangles,
    cs_iou,
    occupancy_metrics,
    pointcloud_fscore,
    reference_index,
    surface_metrics,
)

TAU = 0.01


def unit_cube() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(1.0, 1.0, 1.0))


def shifted_cube_expected(d: float, tau: float) -> tuple[float, float]:
    """Exact Chamfer and F-score of the unit cube [-1/2, 1/2]^3 vs its copy shifted by d along x.

    Per face of the shifted cube (area 6 in total; the reverse direction is the mirror image):
      * outer +x face (area 1): distance d;
      * inner -x face (area 1): min(d, 1/2 - |y|, 1/2 - |z|), since rim points are nearer the
        side faces; with u, v ~ U[0, 1/2], E[min(d, u, v)] = int_0^d (1 - 2t)^2 dt
        = (1 - (1 - 2d)^3) / 6 and P(min < tau) = 1 - (1 - 2 tau)^2 for tau < d;
      * four side faces: the part overlapping the reference (area 4(1 - d)) at distance 0, the
        protruding strip (area 4d) at distance uniform in [0, d] (to the reference's edge).
    Valid for 0 < d <= 1/2.
    """
    chamfer = (d + (1 - (1 - 2 * d) ** 3) / 6 + 4 * d * d / 2) / 6
    if d < tau:
        return chamfer, 1.0
    within = (1 - (1 - 2 * tau) ** 2) + 4 * (1 - d) + 4 * d * (tau / d)
    return chamfer, within / 6  # precision == recall, so F equals it


def parallel_sheets(n_sheets: int, grid: int) -> trimesh.Trimesh:
    """``n_sheets`` unit squares stacked along z across the unit cube, each a grid x grid mesh."""
    ticks = np.linspace(-0.5, 0.5, grid + 1)
    xx, yy = np.meshgrid(ticks, ticks, indexing="ij")  # (G+1, G+1)
    corner = np.arange(grid * grid).reshape(grid, grid)
    i, j = np.divmod(corner.reshape(-1), grid)
    v00 = i * (grid + 1) + j
    quads_Q4 = np.stack([v00, v00 + grid + 1, v00 + grid + 2, v00 + 1], axis=1)  # (Q, 4)
    faces_F3 = np.concatenate([quads_Q4[:, [0, 1, 2]], quads_Q4[:, [0, 2, 3]]])  # (2Q, 3)
    n_vert = (grid + 1) ** 2
    vertices, faces = [], []
    for k, z in enumerate(np.linspace(-0.5, 0.5, n_sheets)):
        vertices.append(np.stack([xx.ravel(), yy.ravel(), np.full(n_vert, z)], axis=1))
        faces.append(faces_F3 + k * n_vert)
    return trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)


def test_identical_meshes_score_perfectly() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    result = surface_metrics(sphere, sphere.copy())
    assert result["fscore"] == 1.0
    # Documented bound: refined distances are exact when the query's own face is among its k
    # nearest samples' faces, which holds almost everywhere on a mesh of this resolution.
    assert result["chamfer"] < 1e-5
    assert result["normal_consistency"] > 0.999


@pytest.mark.parametrize("d", [0.002, 0.005])
def test_shift_below_tau_gives_exact_chamfer_and_full_fscore(d: float) -> None:
    ref = unit_cube()
    pred = ref.copy().apply_translation((d, 0.0, 0.0))
    expected_cd, expected_f = shifted_cube_expected(d, TAU)
    result = surface_metrics(pred, ref, tau=TAU)
    assert expected_f == 1.0
    assert result["fscore"] == 1.0
    assert result["chamfer"] == pytest.approx(expected_cd, rel=0.03)


@pytest.mark.parametrize("d", [0.05, 0.2])
def test_shift_above_tau_gives_analytic_fraction(d: float) -> None:
    ref = unit_cube()
    pred = ref.copy().apply_translation((d, 0.0, 0.0))
    expected_cd, expected_f = shifted_cube_expected(d, TAU)
    result = surface_metrics(pred, ref, tau=TAU)
    # 30k queries per side: binomial std of a fraction ~0.003, Chamfer mean ~0.7 % relative.
    assert result["precision"] == pytest.approx(expected_f, abs=0.012)
    assert result["recall"] == pytest.approx(expected_f, abs=0.012)
    assert result["fscore"] == pytest.approx(expected_f, abs=0.012)
    # Unrefined nearest-sample distances would land ~9 % high at d = 0.05 and fail this.
    assert result["chamfer"] == pytest.approx(expected_cd, rel=0.03)
    assert result["dist_pred_to_ref"] == pytest.approx(result["dist_ref_to_pred"], rel=0.05)


def test_large_area_self_score_is_not_sampling_noise() -> None:
    ref = parallel_sheets(n_sheets=8, grid=7)  # area 8, sheets 1/7 apart
    pred = parallel_sheets(n_sheets=8, grid=10)  # same surface, different triangles
    assert ref.area == pytest.approx(8.0)
    for seed in (0, 1):
        assert surface_metrics(pred, ref, tau=TAU, seed=seed)["fscore"] >= 0.999
    # The paper's 10k-vs-10k point-cloud recipe cannot reach the bar on the same pair.
    assert pointcloud_fscore(pred, ref, tau=TAU, n_points=10_000) < 0.9


def test_normal_consistency_is_cosine_of_tilt() -> None:
    plane = parallel_sheets(n_sheets=1, grid=1)
    angle = math.radians(30.0)
    tilted = plane.copy().apply_transform(trimesh.transformations.rotation_matrix(angle, (0.0, 1.0, 0.0)))
    # Every closest point lies on a face of the other plane, so each |cos| is exactly cos(30).
    result = surface_metrics(tilted, plane, n_query=5_000, n_ref=50_000)
    assert result["normal_consistency"] == pytest.approx(math.cos(angle), abs=1e-9)


def test_deterministic_in_seed() -> None:
    ref = unit_cube()
    pred = ref.copy().apply_translation((0.05, 0.0, 0.0))
    first = surface_metrics(pred, ref, n_query=5_000, n_ref=50_000, seed=3)
    again = surface_metrics(pred, ref, n_query=5_000, n_ref=50_000, seed=3)
    other = surface_metrics(pred, ref, n_query=5_000, n_ref=50_000, seed=4)
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    "pred",
    [
        None,
        trimesh.Trimesh(),
        trimesh.Trimesh(np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]])),
    ],
    ids=["none", "empty", "zero-area"],
)
def test_degenerate_prediction_scores_zero(pred) -> None:
    result = surface_metrics(pred, unit_cube())
    assert result["fscore"] == 0.0 and result["precision"] == 0.0 and result["recall"] == 0.0
    assert result["chamfer"] == math.inf


def test_degenerate_reference_is_a_mesh_error() -> None:
    with pytest.raises(MeshError):
        surface_metrics(unit_cube(), trimesh.Trimesh())
    with pytest.raises(MeshError):
        reference_index(trimesh.Trimesh())


def test_a_reference_index_built_once_scores_every_prediction_as_without_it() -> None:
    ref = unit_cube()
    index = reference_index(ref, n_query=5_000, n_ref=50_000, seed=3)
    for shift in (0.004, 0.02):
        pred = ref.copy().apply_translation((shift, 0.0, 0.0))
        alone = surface_metrics(pred, ref, n_query=5_000, n_ref=50_000, seed=3)
        assert surface_metrics(pred, ref, n_query=5_000, n_ref=50_000, seed=3, ref_index=index) == alone


def test_closest_point_matches_trimesh() -> None:
    rng = np.random.default_rng(0)
    tris_N33 = rng.normal(size=(4000, 3, 3))
    points_N3 = 2.0 * rng.normal(size=(4000, 3))
    ours = closest_point_on_triangles(points_N3, tris_N33)
    reference = trimesh.triangles.closest_point(tris_N33, points_N3)
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_occupancy_metrics_on_hand_made_arrays() -> None:
    logits = np.array([2.0, -1.0, 0.5, -3.0, 1.0])
    target = np.array([1, 0, 0, 0, 1])
    sdf = np.array([0.01, 0.2, -0.04, 0.3, 0.06])
    # predicted occupancy [1, 0, 1, 0, 1]: one false positive (index 2, near the surface).
    result = occupancy_metrics(logits, target, query_sdf=sdf)
    assert result["accuracy"] == pytest.approx(4 / 5)
    assert result["iou"] == pytest.approx(2 / 3)
    assert result["near_surface_accuracy"] == pytest.approx(1 / 2)  # near set: indices 0, 2

    probs = torch.sigmoid(torch.tensor(logits))
    from_probs = occupancy_metrics(probs, torch.tensor(target), query_sdf=sdf, from_logits=False)
    assert from_probs == result

    explicit = occupancy_metrics(logits, target, near_mask=[False, True, False, True, True])
    assert explicit["near_surface_accuracy"] == pytest.approx(1.0)


def test_occupancy_metrics_edge_cases() -> None:
    empty = occupancy_metrics(np.full(4, -1.0), np.zeros(4))
    assert empty["iou"] == 1.0 and empty["accuracy"] == 1.0
    assert math.isnan(empty["near_surface_accuracy"])
    disjoint = occupancy_metrics(np.array([True, False]), np.array([False, True]))
    assert disjoint["iou"] == 0.0 and disjoint["accuracy"] == 0.0
    with pytest.raises(ValueError):
        occupancy_metrics(np.zeros(3), np.zeros(4))


def test_cs_iou_averages_prefixes() -> None:
    assert cs_iou([0.9, 0.6, 0.3]) == pytest.approx(0.6)
    assert cs_iou(x for x in [0.5]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cs_iou([])
    with pytest.raises(ValueError):
        cs_iou([0.5, 1.5])
