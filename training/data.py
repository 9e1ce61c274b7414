"""Prepared-shape cache: the shard format written by training.prepare and the batches read by training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from vatcodec.fileio import atomic_output
from vatcodec.geometry.labels import LABEL_BAND, semi_continuous_occupancy

INDEX_NAME = "index.json"


def write_shard(path: Path, samples: list[dict[str, np.ndarray]]) -> None:
    """One shard: the per-shape arrays stacked along a new first axis (all shapes share sizes)."""
    keys = ("surface_points", "surface_normals", "query_points", "query_sdf")
    arrays = {k: np.stack([s[k] for s in samples]).astype(np.float32) for k in keys}
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(arrays, str(tmp))


@dataclass
class ShapeCache:
    """All prepared shapes of one split, held in memory (a few hundred MB for the whole corpus)."""

    names: list[str]
    surface_points: np.ndarray  # (S, Ns, 3)
    surface_normals: np.ndarray  # (S, Ns, 3)
    query_points: np.ndarray  # (S, Mq, 3), uniform queries first, then near-surface ones
    query_sdf: np.ndarray  # (S, Mq)
    n_uniform: int  # how many of the Mq queries are uniform in the cube

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def load(cls, root: str | Path, split: str = "train") -> ShapeCache:
        root = Path(root)
        index = json.loads((root / INDEX_NAME).read_text())
        rows = [s for s in index["shapes"] if s["split"] == split]
        if not rows:
            raise ValueError(f"{root}: no shapes in split {split!r}")
        by_shard: dict[str, list[dict]] = {}
        for r in rows:
            by_shard.setdefault(r["shard"], []).append(r)
        parts: dict[str, list[np.ndarray]] = {}
        names = []
        for shard, members in sorted(by_shard.items()):
            arrays = load_file(str(root / shard))
            take = [m["row"] for m in members]
            names += [m["name"] for m in members]
            for k, v in arrays.items():
                parts.setdefault(k, []).append(v[take])
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        return cls(names=names, n_uniform=index["n_uniform"], **cat)


def evenly_spaced(cache: ShapeCache, n: int) -> ShapeCache:
    """A fixed subset of n shapes spread evenly over the cache's (sorted) order; the whole cache if n is 0."""
    if not n or n >= len(cache):
        return cache
    take = np.linspace(0, len(cache) - 1, n).round().astype(np.int64)
    return ShapeCache(
        names=[cache.names[i] for i in take],
        surface_points=cache.surface_points[take],
        surface_normals=cache.surface_normals[take],
        query_points=cache.query_points[take],
        query_sdf=cache.query_sdf[take],
        n_uniform=cache.n_uniform,
    )


def check_pyramid_points(cache: ShapeCache, cfg) -> None:
    """A pyramid's levels must be distinct points: drawn with replacement, its finest level would repeat the coarse
    ones and the pooled points would hold duplicates. Raises ValueError when the cache holds too few."""
    have = cache.surface_points.shape[1]
    if cfg.pyramid and cfg.input_points > have:
        raise ValueError(
            f"the pyramid reads {cfg.input_points} surface points a shape; the cache holds {have} "
            "(prepare it with more, or pack it with training.pack_cache --surface)"
        )


class BatchSampler:
    """Deterministic, resumable batches of random point subsets with label-preserving augmentation.

    The epoch's shape order is a permutation drawn from (seed, epoch); rank r of w takes every w-th shape, so
    DDP ranks see disjoint data. Augmentations are mirror flips of x and z and quarter turns about the up axis
    (y): they keep the bounding box in the unit cube and leave every signed distance exactly valid.
    `query_occ` is the semi-continuous label of sdf - label_dilate with band label_band; `query_sdf` stays the
    cache's (undilated) signed distance, which evaluation labels come from.

    `stretch` > 0 adds 3DShape2VecSet's anisotropic scaling (`_stretch`): inside/outside stays exact, the
    signed distance becomes approximate (off by the axis factors, at most 1 / (1 - stretch)).
    """

    def __init__(
        self,
        cache: ShapeCache,
        batch_size: int,
        num_points: int,
        num_queries: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        augment: bool = True,
        label_dilate: float = 0.0,
        label_band: float = LABEL_BAND,
        stretch: float = 0.0,
    ):
        if not 0.0 <= stretch < 1.0:
            raise ValueError(f"stretch must be in [0, 1), got {stretch}")
        self.stretch = stretch
        self.label_dilate, self.label_band = label_dilate, label_band
        self.cache, self.batch_size = cache, batch_size
        self.num_points, self.num_queries = num_points, num_queries
        self.seed, self.rank, self.world, self.augment = seed, rank, world, augment
        self.per_rank = len(cache) // world
        if self.per_rank < 1:
            raise ValueError(f"{len(cache)} shapes cannot feed {world} ranks")
        self.steps_per_epoch = max(1, self.per_rank // batch_size)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch for a global step: the same step always gives the same batch (resume = set the step)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.cache))
        mine = order[self.rank :: self.world][: self.per_rank]
        ids = np.resize(mine, (k + 1) * self.batch_size)[k * self.batch_size :]
        rng = np.random.default_rng([self.seed, epoch, k, self.rank, 1])
        # Which cache rows the batch holds, so per-shape targets (training.targets) can be looked up.
        return self.collate(ids, rng) | {"shape_index": torch.from_numpy(ids.astype(np.int64))}

    def collate(self, ids: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        c = self.cache
        Ns, Mq = c.surface_points.shape[1], c.query_points.shape[1]
        n_unif = self.num_queries // 2
        out = {k: [] for k in ("surface_points", "surface_normals", "query_points", "query_occ", "query_sdf")}
        for i in ids:
            p = rng.choice(Ns, self.num_points, replace=Ns < self.num_points)
            q = np.concatenate(
                [
                    rng.choice(c.n_uniform, n_unif, replace=c.n_uniform < n_unif),
                    c.n_uniform
                    + rng.choice(
                        Mq - c.n_uniform,
                        self.num_queries - n_unif,
                        replace=Mq - c.n_uniform < self.num_queries - n_unif,
                    ),
                ]
            )
            pts, nrm, qp = c.surface_points[i, p], c.surface_normals[i, p], c.query_points[i, q]
            sdf = c.query_sdf[i, q]
            if self.stretch > 0:
                pts, nrm, qp, sdf = _stretch(pts, nrm, qp, sdf, n_unif, self.stretch, rng)
            if self.augment:
                pts, nrm, qp = _augment([pts, nrm, qp], rng)
            out["surface_points"].append(pts)
            out["surface_normals"].append(nrm)
            out["query_points"].append(qp)
            out["query_sdf"].append(sdf)
            out["query_occ"].append(semi_continuous_occupancy(sdf - self.label_dilate, self.label_band))
        return {k: torch.from_numpy(np.stack(v).astype(np.float32)) for k, v in out.items()}


def _augment(arrays_N3: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    # Flips and quarter turns about y map the centred unit cube onto itself, and normals transform like points.
    sign = np.where(rng.random(3) < 0.5, -1.0, 1.0)
    sign[1] = 1.0
    turn = rng.integers(4)
    out = []
    for a in arrays_N3:
        a = a * sign
        for _ in range(turn):
            a = np.stack([a[:, 2], a[:, 1], -a[:, 0]], axis=1)
        out.append(a.astype(np.float32))
    return out


def _stretch(pts_N3, nrm_N3, qp_M3, sdf_M, n_uniform, amount, rng):
    """Scales each axis by its own factor (3DShape2VecSet's augmentation), then restores the longest side.

    The map is a bijection, so every query keeps its inside/outside label; only its distance is approximate.
    Uniform queries pushed out of the query cube are replaced by copies of ones that stayed in (the cube's
    corners that a shrunk axis uncovers are simply sampled less).
    """
    ext_3 = pts_N3.max(0) - pts_N3.min(0)
    s_3 = rng.uniform(1.0 - amount, 1.0, size=3)
    a_3 = s_3 * ext_3.max() / max((ext_3 * s_3).max(), 1e-6)  # keep the longest side: still in the unit cube
    bound = float(np.abs(qp_M3[:n_uniform]).max())
    qp_M3 = qp_M3 * a_3
    ok_M = (np.abs(qp_M3) <= bound).all(1)
    ok_M[n_uniform:] = True  # near-surface queries stay near the (in-cube) surface
    if not ok_M.all():
        keep = np.flatnonzero(ok_M[:n_uniform])
        bad = np.flatnonzero(~ok_M)
        src = rng.choice(keep, len(bad))
        qp_M3, sdf_M = qp_M3.copy(), sdf_M.copy()
        qp_M3[bad], sdf_M[bad] = qp_M3[src], sdf_M[src]
    nrm_N3 = nrm_N3 / a_3  # normals transform by the inverse transpose
    nrm_N3 = nrm_N3 / np.maximum(np.linalg.norm(nrm_N3, axis=1, keepdims=True), 1e-12)
    return pts_N3 * a_3, nrm_N3, qp_M3, sdf_M
