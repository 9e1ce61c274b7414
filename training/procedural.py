"""Procedural furniture-like assemblies (tables, chairs, shelves, cabinets, stools, lamps) written as OBJ files.

    python -m training.procedural ~/.cache/vatcodec/procedural --count 256 --seed 0

Training data we generate ourselves (issue 13, "Data"): boxes, plates and cylinders placed the way furniture
is built, with thin legs, rods and panels at random proportions. Parts overlap instead of being fused: the
label oracle (`vatcodec.geometry.occupancy`) handles intersecting parts. The same seed writes the same files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh


def _box(center, extents) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=np.maximum(np.asarray(extents, dtype=float), 1e-3))
    m.apply_translation(center)
    return m


def _cyl(center, radius: float, height: float, axis: int = 1, sections: int = 24) -> trimesh.Trimesh:
    m = trimesh.creation.cylinder(radius=max(radius, 1e-3), height=max(height, 1e-3), sections=sections)
    if axis == 1:  # trimesh's cylinders stand along z; furniture stands along y
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    elif axis == 0:
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    m.apply_translation(center)
    return m


def _legs(w, d, h, t, round_legs: bool, inset: float) -> list[trimesh.Trimesh]:
    out = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (w / 2 - inset - t / 2), h / 2, sz * (d / 2 - inset - t / 2))
            out.append(_cyl(c, t / 2, h) if round_legs else _box(c, (t, h, t)))
    return out


def table(rng) -> list[trimesh.Trimesh]:
    w, d, h = rng.uniform(0.6, 1.6), rng.uniform(0.4, 1.0), rng.uniform(0.4, 0.9)
    top, t = rng.uniform(0.02, 0.08), rng.uniform(0.025, 0.08)
    parts = _legs(w, d, h - top, t, rng.random() < 0.4, rng.uniform(0.0, 0.08))
    if rng.random() < 0.3:  # a round top on the same legs
        parts.append(_cyl((0, h - top / 2, 0), max(w, d) / 2, top, sections=48))
    else:
        parts.append(_box((0, h - top / 2, 0), (w, top, d)))
    if rng.random() < 0.4:  # a lower shelf
        parts.append(_box((0, rng.uniform(0.1, 0.3) * h, 0), (w * 0.9, top * 0.7, d * 0.9)))
    return parts


def chair(rng) -> list[trimesh.Trimesh]:
    w, d, seat_h = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.5)
    seat, t, back_h = rng.uniform(0.03, 0.08), rng.uniform(0.025, 0.05), rng.uniform(0.3, 0.6)
    parts = _legs(w, d, seat_h - seat, t, rng.random() < 0.3, 0.0)
    parts.append(_box((0, seat_h - seat / 2, 0), (w, seat, d)))
    if rng.random() < 0.5:  # a solid back
        parts.append(_box((0, seat_h + back_h / 2, -d / 2 + t / 2), (w, back_h, t)))
    else:  # posts and slats
        for sx in (-1, 1):
            parts.append(_box((sx * (w / 2 - t / 2), seat_h + back_h / 2, -d / 2 + t / 2), (t, back_h, t)))
        for k in range(rng.integers(1, 4)):
            y = seat_h + back_h * (0.4 + 0.55 * k / 3)
            parts.append(_box((0, y, -d / 2 + t / 2), (w, t * 1.5, t * 0.8)))
    return parts


def shelf(rng) -> list[trimesh.Trimesh]:
    w, d, h = rng.uniform(0.5, 1.2), rng.uniform(0.2, 0.45), rng.uniform(0.6, 2.0)
    t, n = rng.uniform(0.015, 0.04), int(rng.integers(2, 7))
    parts = [_box((sx * (w / 2 - t / 2), h / 2, 0), (t, h, d)) for sx in (-1, 1)]
    parts += [_box((0, t / 2 + k * (h - t) / (n - 1), 0), (w, t, d)) for k in range(n)]
    if rng.random() < 0.5:
        parts.append(_box((0, h / 2, -d / 2 + t / 4), (w, h, t / 2)))  # a back panel
    return parts


def cabinet(rng) -> list[trimesh.Trimesh]:
    w, d, h = rng.uniform(0.4, 1.5), rng.uniform(0.3, 0.7), rng.uniform(0.4, 1.8)
    foot = rng.uniform(0.0, 0.12)
    foot = foot if foot > 0.02 else 0.0  # on legs, or standing on the floor
    parts = [_box((0, foot + h / 2, 0), (w, h, d))]
    if foot > 0:
        parts += _legs(w, d, foot, rng.uniform(0.03, 0.06), rng.random() < 0.5, 0.02)
    for k in range(int(rng.integers(0, 4))):  # handles
        y = foot + h * (k + 0.5) / 4
        parts.append(_box((0, y, d / 2 + 0.01), (w * 0.3, 0.02, 0.02)))
    return parts


def stool(rng) -> list[trimesh.Trimesh]:
    r, h, t = rng.uniform(0.15, 0.3), rng.uniform(0.4, 0.8), rng.uniform(0.02, 0.04)
    seat = rng.uniform(0.03, 0.07)
    parts = [_cyl((0, h - seat / 2, 0), r, seat, sections=40)]
    n = int(rng.integers(3, 5))
    for k in range(n):
        a = 2 * np.pi * k / n
        parts.append(_cyl((0.75 * r * np.cos(a), (h - seat) / 2, 0.75 * r * np.sin(a)), t / 2, h - seat))
    if rng.random() < 0.6:  # a foot ring of rods
        for k in range(n):
            a0, a1 = 2 * np.pi * k / n, 2 * np.pi * (k + 1) / n
            p0, p1 = (
                0.75 * r * np.array([np.cos(a0), np.sin(a0)]),
                0.75 * r * np.array([np.cos(a1), np.sin(a1)]),
            )
            mid, length = (p0 + p1) / 2, np.linalg.norm(p1 - p0)
            rod = _cyl((0, 0, 0), t / 3, length, axis=0)
            rod.apply_transform(
                trimesh.transformations.rotation_matrix(-np.arctan2(*(p1 - p0)[::-1]), [0, 1, 0])
            )
            rod.apply_translation((mid[0], 0.3 * h, mid[1]))
            parts.append(rod)
    return parts


def lamp(rng) -> list[trimesh.Trimesh]:
    h, base_r = rng.uniform(0.4, 1.8), rng.uniform(0.08, 0.2)
    pole = rng.uniform(0.008, 0.025)
    shade_r, shade_h = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3)
    parts = [_cyl((0, 0.015, 0), base_r, 0.03, sections=40), _cyl((0, h / 2, 0), pole, h)]
    shade = trimesh.creation.cone(radius=shade_r, height=shade_h, sections=40)
    shade.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    shade.apply_translation((0, h - shade_h * 0.3, 0))
    parts.append(shade)
    return parts


KINDS: dict[str, Callable] = {
    "table": table, "chair": chair, "shelf": shelf, "cabinet": cabinet, "stool": stool, "lamp": lamp,
}  # fmt: skip


def make_shape(kind: str, seed: int) -> trimesh.Trimesh:
    """One assembly of a kind; the same (kind, seed) gives the same mesh."""
    return trimesh.util.concatenate(KINDS[kind](np.random.default_rng([seed, len(kind)])))


def write_shapes(out: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` shapes, the kinds in turn, as out/<kind>/<kind>-<i>.obj; returns the paths."""
    paths = []
    kinds = list(KINDS)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        path = out / kind / f"{kind}-{i:04d}.obj"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_shape(kind, seed * 1_000_003 + i).export(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    paths = write_shapes(a.out, a.count, a.seed)
    print(f"wrote {len(paths)} shapes under {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
