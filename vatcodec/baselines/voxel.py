"""Classical baseline: watertight voxel occupancy, bit-packed and zstd-compressed, decoded by marching cubes."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import mcubes
import numpy as np
import trimesh
import zstandard
from scipy import ndimage

from vatcodec.errors import BitstreamError

from .common import BaselineResult, _geometry

VOXEL_ZSTD_LEVEL = 22
VOXEL_MAX_RES = 256
# dims (3 x uint16), origin (3 x float32), voxel pitch (float32): all a decoder needs.
_VOXEL_HEADER = struct.Struct("<3H4f")
# Decoder smoothing (in cells) and iso-level; chosen on two training libraries, see voxels_to_mesh.
_DECODE_SIGMA = 0.7
_DECODE_LEVEL = 0.8
_DECODE_PAD = 3


def _sample_triangles_dense(tris_T33: np.ndarray, spacing: float) -> np.ndarray:
    """Points on every triangle, no surface point farther than about ``spacing`` from one; (N, 3).

    Rows parallel to each triangle's longest edge, ``spacing`` apart, each sampled every
    ``spacing``: the count grows with the area, not the squared edge length, so slivers stay cheap.
    """
    edges_T33 = np.roll(tris_T33, -1, axis=1) - tris_T33  # edge i runs from corner i to i + 1
    base = np.argmax(np.linalg.norm(edges_T33, axis=2), axis=1)
    rows_T = np.arange(len(tris_T33))
    a_T3 = tris_T33[rows_T, base]
    b_T3 = tris_T33[rows_T, (base + 1) % 3]
    c_T3 = tris_T33[rows_T, (base + 2) % 3]
    length_T = np.linalg.norm(b_T3 - a_T3, axis=1)
    height_T = np.linalg.norm(np.cross(b_T3 - a_T3, c_T3 - a_T3), axis=1) / np.maximum(length_T, 1e-300)
    n_rows_T = np.ceil(height_T / spacing).astype(np.int64) + 1
    tri_of_row = np.repeat(rows_T, n_rows_T)
    first_row = np.cumsum(n_rows_T) - n_rows_T
    j_R = np.arange(len(tri_of_row)) - first_row[tri_of_row]
    v_R = j_R / np.maximum(n_rows_T[tri_of_row] - 1, 1)
    start_R3 = a_T3[tri_of_row] + v_R[:, None] * (c_T3 - a_T3)[tri_of_row]
    end_R3 = b_T3[tri_of_row] + v_R[:, None] * (c_T3 - b_T3)[tri_of_row]
    n_pts_R = np.ceil((1.0 - v_R) * length_T[tri_of_row] / spacing).astype(np.int64) + 1
    row_of_pt = np.repeat(np.arange(len(v_R)), n_pts_R)
    first_pt = np.cumsum(n_pts_R) - n_pts_R
    t_P = (np.arange(len(row_of_pt)) - first_pt[row_of_pt]) / np.maximum(n_pts_R[row_of_pt] - 1, 1)
    return start_R3[row_of_pt] + t_P[:, None] * (end_R3 - start_R3)[row_of_pt]


def _surface_cells(tris_T33: np.ndarray, shape: tuple[int, int, int], pad: int) -> np.ndarray:
    """Bool grid ``shape`` of the unit cells that the triangles (in cell coordinates) pass through.

    Cells are clipped to the grid less ``pad`` layers each side: a surface lying on the bounding
    box's far side would otherwise round into the padding and seal openings at the grid's edge.
    """
    wall = np.zeros(shape, dtype=bool)
    spacing = 0.5
    # Bound the memory of the sampling: estimate each triangle's point count and cut into chunks.
    length_T = np.linalg.norm(np.roll(tris_T33, -1, axis=1) - tris_T33, axis=2).max(axis=1)
    cross_T3 = np.cross(tris_T33[:, 1] - tris_T33[:, 0], tris_T33[:, 2] - tris_T33[:, 0])
    height_T = np.linalg.norm(cross_T3, axis=1) / np.maximum(length_T, 1e-300)
    estimate_T = (height_T / spacing + 2) * (length_T / spacing + 2)
    chunk_of_tri = (np.cumsum(estimate_T) // 2_000_000).astype(np.int64)
    for chunk in np.unique(chunk_of_tri):
        points_N3 = _sample_triangles_dense(tris_T33[chunk_of_tri == chunk], spacing)
        cells_N3 = np.clip(np.floor(points_N3).astype(np.int64), pad, np.asarray(shape) - 1 - pad)
        wall[cells_N3[:, 0], cells_N3[:, 1], cells_N3[:, 2]] = True
    return wall


@dataclass(frozen=True)
class VoxelGrid:
    """Isotropic grid over a bounding box: cell (i, j, k) spans origin + [i, i + 1) * pitch, etc."""

    dims: tuple[int, int, int]
    origin: tuple[float, float, float]
    pitch: float

    @staticmethod
    def over_bbox(lo: np.ndarray, hi: np.ndarray, res: int) -> VoxelGrid:
        """``res`` cells along the longest side, as many as needed on the others, centred on the box."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        pitch = float((hi - lo).max()) / res
        dims = np.maximum(1, np.ceil((hi - lo) / pitch - 1e-9).astype(np.int64))
        origin = (lo + hi) / 2 - dims * pitch / 2
        # Round to what the header stores, so that encoder and decoder use identical numbers.
        origin32 = np.asarray(origin, dtype=np.float32)
        return VoxelGrid(
            tuple(int(d) for d in dims), tuple(float(o) for o in origin32), float(np.float32(pitch))
        )


def _dilate_cube(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation by a (2 radius + 1)^3 cube, one axis at a time (3x fewer neighbour visits)."""
    for axis in range(3):
        if radius:
            shape = [1, 1, 1]
            shape[axis] = 2 * radius + 1
            mask = ndimage.binary_dilation(mask, structure=np.ones(shape, dtype=bool))
    return mask


def voxel_occupancy(mesh: trimesh.Trimesh, grid: VoxelGrid, close: int = 1) -> np.ndarray:
    """Watertight occupancy (bool, ``grid.dims``) of a possibly open, multi-part surface.

    Cells the surface passes through are walls; the solid is everything that a flood fill from
    outside the grid cannot reach. Gaps up to about ``2 * close`` cells are closed first
    (morphological closing), so near-watertight furniture is filled rather than left hollow.
    """
    vertices_V3, faces_F3 = _geometry(mesh)
    dims = np.asarray(grid.dims)
    pad = 1 + close
    tris_T33 = (vertices_V3[faces_F3] - np.asarray(grid.origin)) / grid.pitch + pad
    wall = _surface_cells(tris_T33, tuple(int(d) for d in dims + 2 * pad), pad)
    wall = _dilate_cube(wall, close)
    labels, _ = ndimage.label(~wall)
    outside = labels == labels[0, 0, 0]  # the padding corner is never a wall
    outside = _dilate_cube(outside, close)
    return ~outside[pad:-pad, pad:-pad, pad:-pad]


def encode_voxels(occupancy: np.ndarray, grid: VoxelGrid, level: int = VOXEL_ZSTD_LEVEL) -> bytes:
    """Header (dims, origin, pitch) + zstd of the occupancy, bit-packed row by row in C order."""
    header = _VOXEL_HEADER.pack(*grid.dims, *grid.origin, grid.pitch)
    # Each row starts on a byte boundary, so rows that repeat give byte strings that repeat: zstd
    # matches bytes, and with rows packed back to back the grid compresses up to 2x worse.
    packed = np.packbits(np.asarray(occupancy, dtype=bool), axis=-1)
    compressor = zstandard.ZstdCompressor(
        level=level, write_checksum=False, write_content_size=False, write_dict_id=False
    )
    return header + compressor.compress(packed.tobytes())


def decode_voxels(data: bytes) -> tuple[np.ndarray, VoxelGrid]:
    """Inverse of :func:`encode_voxels`: the occupancy grid and its placement."""
    if len(data) < _VOXEL_HEADER.size:
        raise BitstreamError(f"voxel payload of {len(data)} bytes is shorter than its header")
    *dims, ox, oy, oz, pitch = _VOXEL_HEADER.unpack_from(data)
    if min(dims) < 1 or not pitch > 0 or not np.isfinite([ox, oy, oz, pitch]).all():
        raise BitstreamError("voxel payload header is corrupt")
    row_bytes = (dims[2] + 7) // 8
    n_bytes = dims[0] * dims[1] * row_bytes
    try:
        raw = zstandard.ZstdDecompressor().decompress(data[_VOXEL_HEADER.size :], max_output_size=n_bytes)
    except zstandard.ZstdError as e:
        raise BitstreamError(f"cannot decompress voxel payload: {e}") from None
    if len(raw) != n_bytes:
        raise BitstreamError(f"voxel payload holds {len(raw)} bytes of cells, header says {n_bytes}")
    packed = np.frombuffer(raw, dtype=np.uint8).reshape(dims[0], dims[1], row_bytes)
    occupancy = np.unpackbits(packed, axis=-1, count=dims[2]).astype(bool)
    return occupancy, VoxelGrid(tuple(dims), (ox, oy, oz), pitch)


def voxels_to_mesh(occupancy: np.ndarray, grid: VoxelGrid) -> trimesh.Trimesh:
    """Marching cubes of a smoothed occupancy, with vertices mapped into the grid's frame.

    The encoder marks every cell the surface passes through, so the true surface runs near the
    centres of the solid's outer cells, not half a cell beyond them where the 0.5 level of the
    raw bits lies. The decoder therefore blurs the bits, floors occupied cells at a high value and
    extracts that value's level: the surface hugs the outer cell centres, smoothly, and a sheet
    one cell thick survives as a thin shell around its cells. Against the raw 0.5 level this
    raised the mean F-score (tau = 0.01) at 1 and 4 KB from 0.78 to 0.90 on one training library
    and from 0.73 to 0.88 on another.
    """
    padded = np.pad(occupancy, _DECODE_PAD)
    field = ndimage.gaussian_filter(padded.astype(np.float32), _DECODE_SIGMA)
    field[padded] = np.maximum(field[padded], _DECODE_LEVEL + 0.05)
    vertices_V3, faces_F3 = mcubes.marching_cubes(field, _DECODE_LEVEL)
    # Vertex index _DECODE_PAD is the centre of cell 0.
    vertices_V3 = np.asarray(grid.origin) + (vertices_V3 - _DECODE_PAD + 0.5) * grid.pitch
    return trimesh.Trimesh(vertices_V3, np.asarray(faces_F3, dtype=np.int64), process=False)


def _voxel_resolutions(max_res: int) -> list[int]:
    """Resolutions tried: every one up to 32, then steps of about 6% of the resolution."""
    ladder = list(range(2, 33)) + list(range(34, 65, 2)) + list(range(68, 129, 4)) + list(range(136, 257, 8))
    return [r for r in ladder if r <= max_res]


class VoxelBaseline:
    """Occupancy grid + bit packing + zstd + marching cubes, at the highest resolution that fits.

    Encodings are cached by resolution, so asking one instance for several budgets shares work.

    Args:
        mesh: Input mesh, in any coordinates.
        max_res: Highest resolution (cells along the longest side) tried.
    """

    def __init__(self, mesh: trimesh.Trimesh, max_res: int = VOXEL_MAX_RES):
        vertices_V3, faces_F3 = _geometry(mesh)
        self.mesh = trimesh.Trimesh(vertices_V3, faces_F3, process=False)
        used_U3 = vertices_V3[np.unique(faces_F3)]
        self.lo, self.hi = used_U3.min(axis=0), used_U3.max(axis=0)
        self.resolutions = _voxel_resolutions(max_res)
        self._encoded: dict[int, bytes] = {}

    def encoded(self, res: int) -> bytes:
        """Payload at resolution ``res`` (cached)."""
        if res not in self._encoded:
            grid = VoxelGrid.over_bbox(self.lo, self.hi, res)
            self._encoded[res] = encode_voxels(voxel_occupancy(self.mesh, grid), grid)
        return self._encoded[res]

    def _fits(self, index: int, budget: int) -> bool:
        return len(self.encoded(self.resolutions[index])) <= budget

    def at_budget(self, budget: int) -> BaselineResult | None:
        """Decode of the highest resolution whose payload fits ``budget`` (size taken as growing)."""
        if not self.resolutions or not self._fits(0, budget):
            return None
        # Gallop up by doubling, then bisect: large grids are the slow ones, so avoid them early.
        lo, step = 0, 1
        hi = len(self.resolutions)
        while lo + step < len(self.resolutions):
            if not self._fits(lo + step, budget):
                hi = lo + step
                break
            lo, step = lo + step, step * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._fits(mid, budget):
                lo = mid
            else:
                hi = mid
        res = self.resolutions[lo]
        data = self.encoded(res)
        mesh = voxels_to_mesh(*decode_voxels(data))
        return BaselineResult("voxel", budget, len(data), mesh, {"res": res, "zstd": VOXEL_ZSTD_LEVEL})


def voxel_at_budget(mesh: trimesh.Trimesh, budget: int) -> BaselineResult | None:
    """Highest-resolution voxel occupancy + zstd result within ``budget`` bytes, or None."""
    return VoxelBaseline(mesh).at_budget(budget)
