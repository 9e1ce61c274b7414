"""Signed distance and inside/outside for real, non-watertight meshes (the training labels).

Furniture meshes are open surfaces, thin sheets and intersecting parts, so no single inside test
is reliable. The oracle combines (see docs/occupancy.md for the comparison that chose this):

* magnitude: exact distance to the closest triangle (libigl's AABB tree), so labels are
  precise near the surface;
* global sign: a voxel flood fill from the grid border over voxels the surface misses;
  what the flood cannot reach is inside. Gaps narrower than about a voxel are sealed, open
  containers stay open and sheets have no inside;
* sign next to the surface, where voxels are too coarse: the side of the closest point is
  probed a few voxels away along the direction to the query;
* closed, consistently wound parts (legs, rods thinner than a voxel) additionally get an exact
  generalized-winding-number test, which needs no grid resolution.

Finally the surface is offset outward by ``offset`` so that zero-thickness sheets (curtains,
leaves, table cloths) become thin slabs that marching cubes can recover.
"""

from __future__ import annotations

import igl
import numpy as np
import scipy.ndimage as ndi
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

GRID_HALF_EXTENT = 0.55  # grid covers [-0.55, 0.55]^3: the unit cube plus room for query padding
DEFAULT_OFFSET = 1.0 / 256.0
_PROBE_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0)  # in voxels, from the closest surface point
_SAMPLES_PER_HALF_VOXEL_SQ = 4.0  # surface samples per (h/2)^2 of area when rasterizing


def _rasterize_surface(v_V3: np.ndarray, f_F3: np.ndarray, res: int) -> np.ndarray:
    """Marks voxels touched by the surface: gaps narrower than about a voxel are sealed.

    Samples are dense enough (16 per voxel face area) that a 6-connected flood cannot slip
    through a surface. A one-voxel dilation was tried and sealed dense foliage into solid
    blobs at 128^3 (docs/occupancy.md).
    """
    h = 2 * GRID_HALF_EXTENT / res
    tri_F33 = v_V3[f_F3]
    area_F = 0.5 * np.linalg.norm(
        np.cross(tri_F33[:, 1] - tri_F33[:, 0], tri_F33[:, 2] - tri_F33[:, 0]), axis=1
    )
    n = int(np.clip(_SAMPLES_PER_HALF_VOXEL_SQ * area_F.sum() / (h / 2) ** 2, 1e4, 2e7))
    # Fixed seed: the oracle must be deterministic; samples only need to be dense, not random.
    rng = np.random.Generator(np.random.PCG64(0))
    shell = np.zeros((res, res, res), dtype=bool)  # (R, R, R)

    def mark(pts_N3: np.ndarray) -> None:
        ijk_N3 = np.clip(np.floor((pts_N3 + GRID_HALF_EXTENT) / h).astype(np.int64), 0, res - 1)
        shell[ijk_N3[:, 0], ijk_N3[:, 1], ijk_N3[:, 2]] = True

    cdf_F = np.cumsum(area_F)
    for start in range(0, n, 1 << 20):  # chunks keep memory flat for large surfaces
        m = min(1 << 20, n - start)
        face_M = np.minimum(np.searchsorted(cdf_F, rng.random(m) * cdf_F[-1]), len(cdf_F) - 1)
        r_M2 = rng.random((m, 2))
        fold = r_M2.sum(axis=1) > 1
        r_M2[fold] = 1 - r_M2[fold]
        t_M33 = tri_F33[face_M]
        mark(
            t_M33[:, 0]
            + r_M2[:, :1] * (t_M33[:, 1] - t_M33[:, 0])
            + r_M2[:, 1:] * (t_M33[:, 2] - t_M33[:, 0])
        )
    # Vertices and centroids catch slivers that area-weighted sampling would miss.
    mark(v_V3[np.unique(f_F3)])
    mark(tri_F33.mean(axis=1))
    return shell


def _flood_labels(shell: np.ndarray) -> np.ndarray:
    """Voxel labels: +1 reachable from the border, -1 enclosed, 0 surface shell."""
    comp, _ = ndi.label(~shell)
    faces = [comp[0], comp[-1], comp[:, 0], comp[:, -1], comp[:, :, 0], comp[:, :, -1]]
    border = np.unique(np.concatenate([f.ravel() for f in faces]))
    outside = np.isin(comp, border[border > 0])
    labels = np.where(outside, 1, -1).astype(np.int8)  # (R, R, R)
    labels[shell] = 0
    return labels


def closed_parts(v_V3: np.ndarray, f_F3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of all closed, consistently wound connected parts, oriented outward.

    A part is closed when every edge is shared by exactly two of its faces with opposite
    directions. Coincident vertices are merged first, since OBJ texture seams duplicate them.
    """
    uniq_U3, vid = np.unique(v_V3, axis=0, return_inverse=True)
    f = vid.reshape(-1)[f_F3]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    if len(f) == 0:
        return uniq_U3, np.zeros((0, 3), dtype=np.int64)
    n_v = len(uniq_U3)
    directed_E2 = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    undirected_E2 = np.sort(directed_E2, axis=1)
    _, und_id, und_count = np.unique(undirected_E2, axis=0, return_inverse=True, return_counts=True)
    _, dir_count_inv, dir_count = np.unique(directed_E2, axis=0, return_inverse=True, return_counts=True)
    edge_ok = (und_count[und_id.reshape(-1)] == 2) & (dir_count[dir_count_inv.reshape(-1)] == 1)
    graph = coo_matrix((np.ones(len(directed_E2)), (directed_E2[:, 0], directed_E2[:, 1])), shape=(n_v, n_v))
    n_comp, comp_v = connected_components(graph, directed=False)
    comp_f = comp_v[f[:, 0]]
    comp_e = np.tile(comp_f, 3)
    bad = np.zeros(n_comp, dtype=bool)
    np.logical_or.at(bad, comp_e, ~edge_ok)
    tri = uniq_U3[f]  # (F, 3, 3)
    vol6_F = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    vol_C = np.bincount(comp_f, weights=vol6_F, minlength=n_comp)
    keep_f = ~bad[comp_f] & (np.abs(vol_C[comp_f]) > 1e-12)
    out = f[keep_f]
    flip = vol_C[comp_f[keep_f]] < 0
    out[flip] = out[flip][:, ::-1]
    return uniq_U3, np.ascontiguousarray(out)


class OccupancyOracle:
    """Per-mesh precomputation (voxel flood fill, closed parts, AABB tree) answering SDF queries.

    Args:
        mesh_unit: Mesh already normalized to the unit cube (coordinates within [-0.5, 0.5]).
        resolution: Voxels per side of the flood-fill grid over [-0.55, 0.55]^3.
        offset: Outward surface offset; ``sdf = signed_distance - offset``. Makes sheets into
            slabs of thickness ``2 * offset``. Use 0 for the plain signed distance.
    """

    def __init__(self, mesh_unit: trimesh.Trimesh, resolution: int = 128, offset: float = DEFAULT_OFFSET):
        self.vertices = np.ascontiguousarray(mesh_unit.vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(mesh_unit.faces, dtype=np.int64)
        self.resolution = int(resolution)
        self.offset = float(offset)
        self.voxel = 2 * GRID_HALF_EXTENT / self.resolution
        self.labels = _flood_labels(_rasterize_surface(self.vertices, self.faces, self.resolution))
        self.closed_vertices, self.closed_faces = closed_parts(self.vertices, self.faces)

    def _grid_label(self, p_N3: np.ndarray) -> np.ndarray:
        ijk = np.floor((p_N3 + GRID_HALF_EXTENT) / self.voxel).astype(np.int64)
        ijk = np.clip(ijk, 0, self.resolution - 1)
        return self.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    def _nearest_label(self, p_N3: np.ndarray, radius: int = 4) -> np.ndarray:
        """Label of the closest non-shell voxel within ``radius`` voxels; +1 if there is none."""
        r = np.arange(-radius, radius + 1)
        offsets_K3 = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        offsets_K3 = offsets_K3[np.argsort(np.linalg.norm(offsets_K3, axis=1), kind="stable")]
        out = np.ones(len(p_N3))
        for start in range(0, len(p_N3), 4096):
            pts = p_N3[start : start + 4096]
            ijk = np.floor((pts + GRID_HALF_EXTENT) / self.voxel).astype(np.int64)
            cand = np.clip(ijk[:, None, :] + offsets_K3[None], 0, self.resolution - 1)
            lab_NK = self.labels[cand[..., 0], cand[..., 1], cand[..., 2]]
            hit = lab_NK != 0
            first = np.argmax(hit, axis=1)  # offsets are sorted by length: first hit is closest
            found = hit[np.arange(len(pts)), first]
            out[start : start + len(pts)][found] = lab_NK[np.arange(len(pts)), first][found]
        return out

    def sdf(self, points_N3: np.ndarray) -> np.ndarray:
        """Signed distance (negative inside) minus the offset, as float64 of shape (N,)."""
        p = np.ascontiguousarray(points_N3, dtype=np.float64).reshape(-1, 3)
        if len(p) == 0:
            return np.zeros(0)
        d2_N, _, closest_N3 = igl.point_mesh_squared_distance(p, self.vertices, self.faces)
        dist_N = np.sqrt(np.maximum(d2_N, 0.0))
        sign_N = self._grid_label(p).astype(np.float64)
        near = np.flatnonzero(sign_N == 0)
        if len(near):
            sign_N[near] = self._near_sign(p[near], dist_N[near], closest_N3[near])
        return sign_N * dist_N - self.offset

    def _near_sign(self, p_N3: np.ndarray, dist_N: np.ndarray, closest_N3: np.ndarray):
        dir_N3 = (p_N3 - closest_N3) / np.maximum(dist_N, 1e-12)[:, None]
        sign_N = np.zeros(len(p_N3))
        travel_N = np.zeros(len(p_N3))
        for step in _PROBE_STEPS:
            todo = np.flatnonzero(sign_N == 0)
            if len(todo) == 0:
                break
            probe = closest_N3[todo] + dir_N3[todo] * (step * self.voxel)
            sign_N[todo] = self._grid_label(probe)
            travel_N[todo] = step * self.voxel
        # A straight probe may cross another surface hidden in the shell (narrow gaps): then
        # the probe is much closer to the mesh than the distance it travelled.
        hit = np.flatnonzero(sign_N != 0)
        probe = closest_N3[hit] + dir_N3[hit] * travel_N[hit, None]
        sign_N[hit[self._udf(probe) < 0.7 * travel_N[hit]]] = 0
        stuck = np.flatnonzero(sign_N == 0)
        if len(stuck):
            sign_N[stuck] = self._ascent_sign(p_N3[stuck])
        if len(self.closed_faces):
            winding = igl.fast_winding_number(self.closed_vertices, self.closed_faces, p_N3)
            sign_N[winding > 0.5] = -1.0
        return sign_N

    def _udf(self, p_N3: np.ndarray) -> np.ndarray:
        d2_N, _, _ = igl.point_mesh_squared_distance(p_N3, self.vertices, self.faces)
        return np.sqrt(np.maximum(d2_N, 0.0))

    def _ascent_sign(self, p_N3: np.ndarray, steps: int = 4) -> np.ndarray:
        """Walks up the unsigned distance field, away from all nearby surfaces, to a labelled voxel."""
        q = p_N3.copy()
        sign_N = np.zeros(len(q))
        todo = np.arange(len(q))
        for _ in range(steps):
            d2_N, _, c_N3 = igl.point_mesh_squared_distance(q[todo], self.vertices, self.faces)
            away_N3 = q[todo] - c_N3
            away_N3 /= np.maximum(np.sqrt(d2_N), 1e-12)[:, None]
            q[todo] += away_N3 * self.voxel
            sign_N[todo] = self._grid_label(q[todo])
            todo = todo[sign_N[todo] == 0]
            if len(todo) == 0:
                return sign_N
        # Stuck on a ridge of the distance field (a sealed gap): nearest labelled voxel.
        sign_N[todo] = self._nearest_label(q[todo])
        return sign_N


def signed_distance(
    mesh_unit: trimesh.Trimesh,
    points_N3: np.ndarray,
    resolution: int = 128,
    offset: float = DEFAULT_OFFSET,
) -> np.ndarray:
    """Signed distance (negative inside) of points to a unit-cube mesh; see OccupancyOracle."""
    return OccupancyOracle(mesh_unit, resolution=resolution, offset=offset).sdf(points_N3)
