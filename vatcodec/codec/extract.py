"""Occupancy field -> triangle mesh: coarse-to-fine evaluation near the surface, then marching cubes.

A dense 256^3 grid is 17 M network queries; almost all of them are far from the surface, where the sign is
already known from a coarser grid. `occupancy_grid` evaluates a coarse grid densely, then at each finer level
only the points of cells near the surface (sign changes, dilated by a margin so thin parts are kept), and
fills everything else from the coarser level. After each level a closure pass evaluates every remaining
corner of a sign-change cell, so the mesh equals the one from dense evaluation wherever the coarse grid saw
the surface, and thin parts that touch it are followed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Field = Callable[[torch.Tensor], torch.Tensor]  # points (1, M, 3) in the unit cube -> logits (1, M)

DEFAULT_PADDING = 0.02  # the grid spans [-0.5 - p, 0.5 + p]: shapes touching the unit cube stay closed
DEFAULT_BATCH = 131_072  # points per field call: bounds the decoder's activation memory


@dataclass(frozen=True)
class GridSpec:
    """A regular grid of `resolution` cells per axis over [-0.5 - padding, 0.5 + padding]^3."""

    resolution: int
    padding: float = DEFAULT_PADDING

    @property
    def lo(self) -> float:
        return -0.5 - self.padding

    @property
    def spacing(self) -> float:
        return (1.0 + 2.0 * self.padding) / self.resolution

    def points(self, idx_M3: np.ndarray) -> np.ndarray:
        """Unit-cube coordinates (M, 3) float32 of integer grid indices (M, 3) of the finest level."""
        return (self.lo + idx_M3.astype(np.float64) * self.spacing).astype(np.float32)


@dataclass
class ExtractStats:
    """What an extraction cost: points sent to the field (per level, then the closure pass) and their time."""

    evaluated: int = 0
    per_level: list[int] | None = None
    closure_rounds: int = 0
    cells_checked: int = 0  # cells whose corners the sparse closure looked at
    field_seconds: float = 0.0


class FieldCache:
    """Field values already evaluated on one grid, kept between extractions of the same field at several levels.

    A field's values do not depend on the level, and surfaces a fraction of a logit apart share most of their
    near-surface points: the level search's 7 quick extractions evaluate 4-6x fewer points through one cache
    (docs/performance.md). Values are stored on the finest grid of the hierarchy, so one cache serves only
    `occupancy_grid` calls with this field, resolution, coarse size and padding.
    """

    def __init__(self, field: Field, resolution: int, coarse: int = 32, padding: float = DEFAULT_PADDING):
        cells, k = _levels(resolution, coarse)
        self.field, self.key = field, (resolution, coarse, padding)
        self.n = cells * 2**k + 1  # points per axis of the hierarchy's finest (virtual) grid
        self.values = np.empty(self.n**3, dtype=np.float32)
        self.known = np.zeros(self.n**3, dtype=bool)

    def check(self, field: Field, resolution: int, coarse: int, padding: float) -> None:
        if field is not self.field or (resolution, coarse, padding) != self.key:
            raise ValueError("a FieldCache serves only the field and grid it was made for")


class _Evaluator:
    """Evaluates the field at integer indices of the finest grid, in batches, counting points."""

    def __init__(
        self, field: Field, spec: GridSpec, batch: int, stats: ExtractStats, cache: FieldCache | None = None
    ):
        self.field, self.spec, self.batch, self.stats, self.cache = field, spec, batch, stats, cache

    def __call__(self, idx_M3: np.ndarray) -> np.ndarray:
        if self.cache is None:
            return self._evaluate(idx_M3)
        c = self.cache
        lin_M = (idx_M3[:, 0].astype(np.int64) * c.n + idx_M3[:, 1]) * c.n + idx_M3[:, 2]
        new = ~c.known[lin_M]
        if new.any():
            c.values[lin_M[new]] = self._evaluate(idx_M3[new])
            c.known[lin_M[new]] = True
        return c.values[lin_M]

    def _evaluate(self, idx_M3: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out_M = np.empty(len(idx_M3), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(idx_M3), self.batch):
                pts_1M3 = torch.from_numpy(self.spec.points(idx_M3[i : i + self.batch]))[None]
                out_M[i : i + self.batch] = self.field(pts_1M3)[0].float().numpy()
        self.stats.evaluated += len(idx_M3)
        self.stats.field_seconds += time.perf_counter() - start
        return out_M


def _unique(lin: np.ndarray, size: int) -> np.ndarray:
    """Sorted unique values of `lin` in [0, size): a sort, or a scratch mask when `lin` is dense in the grid.

    Not `np.unique`: its hash-based path in NumPy 2 is 50-80x slower than a sort on a million indices here.
    """
    if len(lin) * 4 > size:
        mask = np.zeros(size, dtype=bool)
        mask[lin] = True
        return np.flatnonzero(mask)
    s = np.sort(lin)
    keep = np.empty(len(s), dtype=bool)
    keep[:1] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


class _Lattice:
    """Linear indices on a point grid n^3 (C order); a cell is named by its lowest corner."""

    def __init__(self, n: int):
        self.n, self.size = n, n**3
        d = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        self.corner_8 = (d[:, 0] * n + d[:, 1]) * n + d[:, 2]  # offsets of a cell's 8 corners
        self._d_83 = d

    def coords(self, lin_M: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(lin_M, (self.n,) * 3), axis=-1)

    def linear(self, idx_M3: np.ndarray) -> np.ndarray:
        return (idx_M3[:, 0] * self.n + idx_M3[:, 1]) * self.n + idx_M3[:, 2]

    def cells_touching(self, lin_M: np.ndarray) -> np.ndarray:
        """Every cell with one of the points as a corner, sorted and unique."""
        n = self.n
        # A point is corner d of cell p - d; along each axis d = 1 needs coordinate >= 1 and d = 0 needs <= n - 2.
        coord = np.unravel_index(lin_M, (n, n, n))
        low = [c >= 1 for c in coord]
        high = [c <= n - 2 for c in coord]
        parts = []
        for (dx, dy, dz), off in zip(self._d_83, self.corner_8, strict=True):
            ok = (low[0] if dx else high[0]) & (low[1] if dy else high[1]) & (low[2] if dz else high[2])
            parts.append(lin_M[ok] - off)
        return _unique(np.concatenate(parts), self.size)

    def sign_changes(self, cells_C: np.ndarray, values_flat: np.ndarray, level: float) -> np.ndarray:
        """The cells whose 8 corners are not all on one side of `level`."""
        ins_C8 = values_flat[cells_C[:, None] + self.corner_8[None]] > level
        return cells_C[ins_C8.any(axis=1) & ~ins_C8.all(axis=1)]

    def corners(self, cells_C: np.ndarray) -> np.ndarray:
        return _unique((cells_C[:, None] + self.corner_8[None]).ravel(), self.size)


_OFFSETS_27 = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), axis=-1).reshape(27, 3)


def _pairwise(a: np.ndarray, op) -> np.ndarray:
    """`op` of each 2x2x2 block of a point grid n^3 -> one value per cell (n-1)^3, separably."""
    a = op(a[:-1], a[1:])
    a = op(a[:, :-1], a[:, 1:])
    return op(a[:, :, :-1], a[:, :, 1:])


def _sign_change_cells(inside: np.ndarray) -> np.ndarray:
    """Cells (n-1)^3 of a point grid n^3 whose 8 corners are not all on the same side."""
    return _pairwise(inside, np.logical_or) & ~_pairwise(inside, np.logical_and)


def _dilate26(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary dilation by the 3x3x3 cube (all 26 neighbours), `iterations` times: separable, so axis by axis."""
    out = mask.copy()
    for _ in range(iterations):
        for axis in range(3):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis], hi[axis] = slice(0, -1), slice(1, None)
            shifted = out.copy()
            shifted[tuple(lo)] |= out[tuple(hi)]
            shifted[tuple(hi)] |= out[tuple(lo)]
            out = shifted
    return out


def _marching_cubes():
    """PyMCubes' compiled `marching_cubes`, loaded without the package's `__init__`.

    `import mcubes` also imports its smoothing module, and with it SciPy: 0.3 s of a decode's start-up for
    a function we never call. Falls back to the normal import if the extension cannot be found.
    """
    global _MC
    if _MC is None:
        try:
            import importlib.machinery
            import importlib.util
            from pathlib import Path

            spec = importlib.util.find_spec("mcubes")
            folder = Path(next(iter(spec.submodule_search_locations)))
            path = next(
                p for p in folder.iterdir() if p.name.startswith("_mcubes.") and p.suffix in (".so", ".pyd")
            )
            loader = importlib.machinery.ExtensionFileLoader("mcubes._mcubes", str(path))
            module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
            loader.exec_module(module)
            _MC = module.marching_cubes
        except Exception:  # noqa: BLE001 - any layout surprise: the ordinary import works, only slower
            import mcubes

            _MC = mcubes.marching_cubes
    return _MC


_MC = None


def _upsample2(values: np.ndarray) -> np.ndarray:
    """Point grid n^3 -> (2n-1)^3; old points keep their values, new ones copy a coarse neighbour.

    New points off the surface cells lie in (or on) a coarse cell whose corners share one sign, so any
    corner's value gives the right side; points that need a true value are evaluated afterwards. Fine
    index f copies coarse index f // 2 along each axis, filled by strided copies (no repeat temporaries).
    """
    n = values.shape[0]
    out = np.empty((2 * n - 1,) * 3, dtype=values.dtype)
    out[::2, ::2, ::2] = values
    out[1::2, ::2, ::2] = values[:-1]
    out[:, 1::2, ::2] = out[:, :-1:2, ::2]
    out[:, :, 1::2] = out[:, :, :-1:2]
    return out


def _levels(resolution: int, coarse: int) -> tuple[int, int]:
    """(coarse cells c, refinements k) with c * 2^k >= resolution and c about `coarse`."""
    k = max(0, math.floor(math.log2(resolution / coarse))) if resolution > coarse else 0
    return math.ceil(resolution / 2**k), k


def dense_grid(
    field: Field,
    resolution: int,
    level: float = 0.0,
    padding: float = DEFAULT_PADDING,
    batch: int = DEFAULT_BATCH,
) -> tuple[np.ndarray, ExtractStats]:
    """Field values at every point of the grid, (R+1)^3 float32: the reference that the hierarchy matches.

    Returns:
        (values, stats); values are closed at the grid boundary like `occupancy_grid`'s.
    """
    spec, stats = GridSpec(resolution, padding), ExtractStats()
    n = resolution + 1
    idx_M3 = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)  # (n^3, 3)
    values = _Evaluator(field, spec, batch, stats)(idx_M3).reshape(n, n, n)
    stats.per_level = [stats.evaluated]
    _close_boundary(values, np.ones(values.shape, dtype=bool), level)
    return values, stats


def _close_boundary(values: np.ndarray, exact: np.ndarray, level: float) -> None:
    """Set the outermost layer to outside, so a shape cut by the grid's box still gives a closed mesh.

    The layer lies in the padding beyond the unit cube, where a shape has nothing, so it is not evaluated.
    """
    for axis in range(3):
        for end in (0, -1):
            face = [slice(None)] * 3
            face[axis] = end
            values[tuple(face)] = level - 1.0
            exact[tuple(face)] = True


def _boundary_points(lat: _Lattice) -> np.ndarray:
    """Linear indices of the outermost layer of points, sorted and unique."""
    n = lat.n
    a_M, b_M = (g.ravel() for g in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    faces = []
    for axis in range(3):
        for end in (0, n - 1):
            cols = [a_M, b_M]
            cols.insert(axis, np.full_like(a_M, end))
            faces.append(lat.linear(np.stack(cols, axis=-1)))
    return _unique(np.concatenate(faces), lat.size)


def occupancy_grid(
    field: Field,
    resolution: int = 256,
    level: float = 0.0,
    coarse: int = 32,
    margin: int = 1,
    padding: float = DEFAULT_PADDING,
    batch: int = DEFAULT_BATCH,
    cache: FieldCache | None = None,
) -> tuple[np.ndarray, ExtractStats]:
    """Field values on the (R+1)^3 grid, exact near the surface and filled from coarser levels elsewhere.

    Args:
        field: callable on points (1, M, 3) in the unit cube returning logits (1, M), > level inside.
        resolution: cells per axis of the final grid R.
        level: iso-value of the surface.
        coarse: cells per axis of the first, densely evaluated level (rounded so levels nest).
        margin: dilation in cells of each level's sign-change cells before refining them (all but the last).
        padding: how far the grid reaches beyond the unit cube on each side.
        batch: points per field call.
        cache: values of this field evaluated by earlier calls (at other levels); read and filled.

    Returns:
        (values (R+1, R+1, R+1) float32, stats); `stats.evaluated` counts only points sent to the field.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if cache is not None:
        cache.check(field, resolution, coarse, padding)
    spec, stats = GridSpec(resolution, padding), ExtractStats(per_level=[])
    evaluate = _Evaluator(field, spec, batch, stats, cache)
    # The levels nest on a virtual grid of c * 2^k >= R cells with the final spacing; it is cropped to R
    # at the end, so any R works, not only c * 2^k.
    cells, k = _levels(resolution, coarse)
    n = cells + 1
    idx_M3 = np.stack(np.meshgrid(*[np.arange(n) * 2**k] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    values = evaluate(idx_M3).reshape(n, n, n)  # (c+1)^3, all exact
    exact = np.ones_like(values, dtype=bool)
    stats.per_level.append(stats.evaluated)
    for lvl in range(1, k + 1):
        before = stats.evaluated
        # One dense pass per level, at the coarse level's size; everything at the fine size below is sparse.
        near = _sign_change_cells(values > level)
        # The last refinement takes no margin: the closure pass below follows the surface from there,
        # which gives the same mesh with about 40% fewer queries.
        if margin > 0 and lvl < k and near.any():
            near = _dilate26(near, margin)
        near_C3 = np.argwhere(near)
        values = _upsample2(values)
        grown = np.zeros(values.shape, dtype=bool)
        grown[::2, ::2, ::2] = exact
        exact = grown
        lat = _Lattice(values.shape[0])
        # Each coarse cell becomes 2x2x2 fine cells; evaluate every fine corner of the cells near the surface.
        fine = _unique(lat.linear((2 * near_C3[:, None, :] + _OFFSETS_27[None]).reshape(-1, 3)), lat.size)
        todo = fine[~exact.reshape(-1)[fine]]
        step = 2 ** (k - lvl)
        _evaluate_points(values, exact, todo, lat, evaluate, step)
        _close_exact(values, exact, level, lat, evaluate, step, stats, seed=todo)
        stats.per_level.append(stats.evaluated - before)
    r1 = resolution + 1
    values = np.ascontiguousarray(values[:r1, :r1, :r1])
    exact = np.ascontiguousarray(exact[:r1, :r1, :r1])
    before = stats.evaluated
    lat = _Lattice(r1)
    boundary = _boundary_points(lat)
    flipped = boundary[values.reshape(-1)[boundary] > level]  # only these change a cell's sign pattern
    _close_boundary(values, exact, level)
    _close_exact(values, exact, level, lat, evaluate, 1, stats, seed=flipped)
    stats.per_level.append(stats.evaluated - before)
    return values, stats


def _evaluate_points(values, exact, lin_M, lat: _Lattice, evaluate: _Evaluator, step: int) -> None:
    values.reshape(-1)[lin_M] = evaluate(lat.coords(lin_M) * step)
    exact.reshape(-1)[lin_M] = True


def _close_exact(values, exact, level, lat, evaluate, step, stats: ExtractStats, seed: np.ndarray) -> None:
    """Evaluate the interpolated corners of sign-change cells until there are none.

    Marching cubes reads every corner of those cells. Repeating also follows a thin part that the coarse
    grid missed but that touches the evaluated region (a chair leg under a detected seat) along its length.
    Only cells touching a point whose value just changed (`seed`, then each round's new points) can have
    become sign-change cells, so each round looks at those and nothing else: the cost follows the surface,
    not the grid.
    """
    v_flat, e_flat = values.reshape(-1), exact.reshape(-1)
    while len(seed):
        cells = lat.cells_touching(seed)
        stats.cells_checked += len(cells)
        todo = lat.corners(lat.sign_changes(cells, v_flat, level))
        todo = todo[~e_flat[todo]]
        if not len(todo):
            return
        stats.closure_rounds += 1
        _evaluate_points(values, exact, todo, lat, evaluate, step)
        seed = todo


def grid_to_mesh(values: np.ndarray, spec: GridSpec, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on a point grid; returns vertices (N, 3) in the unit cube and faces (F, 3) int64."""
    inside = values >= level
    # Marching cubes scans every cell; only the box around the inside points (plus one) can hold surface.
    spans = [np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(len(s) == 0 for s in spans):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    lo = [max(int(s[0]) - 1, 0) for s in spans]
    hi = [min(int(s[-1]) + 2, n) for s, n in zip(spans, values.shape, strict=True)]
    box = values[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    verts_N3, faces_F3 = _marching_cubes()(np.ascontiguousarray(box), float(level))
    verts_N3 = spec.lo + (verts_N3 + np.asarray(lo)) * spec.spacing
    return verts_N3, faces_F3.astype(np.int64)


def extract_mesh(
    field: Field,
    resolution: int = 256,
    level: float = 0.0,
    coarse: int = 32,
    margin: int = 1,
    padding: float = DEFAULT_PADDING,
    batch: int = DEFAULT_BATCH,
    cache: FieldCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mesh of the surface {field = level} in the unit cube, evaluated coarse-to-fine (see `occupancy_grid`).

    Returns:
        (vertices (N, 3) float64 in unit-cube coordinates, faces (F, 3) int64, outward-facing).
    """
    values, _ = occupancy_grid(field, resolution, level, coarse, margin, padding, batch, cache)
    return grid_to_mesh(values, GridSpec(resolution, padding), level)
