"""Fast mesh writers (OBJ, OFF, binary PLY) from vertex and face arrays: NumPy only, no trimesh import.

A decoded shape has hundreds of thousands of faces; formatting them one number at a time in Python (what
general exporters do) costs seconds. Here every number becomes ASCII digits in a few whole-array operations.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vatcodec.errors import MeshError
from vatcodec.fileio import atomic_write_bytes

FLOAT_DECIMALS = 8  # digits after the point in text formats (trimesh's default too)
FAST_SUFFIXES = (".obj", ".off", ".ply")
SAVE_SUFFIXES = (".obj", ".ply", ".stl", ".glb", ".off")  # .stl and .glb go through trimesh


# ASCII of 0000..9999: numbers become digits four at a time (integer division is slow in NumPy).
_LUT4 = np.array([list(f"{i:04d}".encode("ascii")) for i in range(10_000)], dtype=np.uint8)


def _digits(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """ASCII digits (K, width) of non-negative integers, most significant first, and the mask of those shown.

    Leading zeros are hidden, but the last digit always shows (so 0 prints as "0").
    """
    chunks = -(-width // 4)
    parts, rest = [], values
    for _ in range(chunks):
        rest, low = np.divmod(rest, 10_000)
        parts.append(_LUT4[low])
    d_KW = np.concatenate(parts[::-1], axis=1)[:, 4 * chunks - width :]
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    shown_KW = values[:, None] >= powers[None]
    shown_KW[:, -1] = True
    return d_KW, shown_KW


def _int_width(values: np.ndarray) -> int:
    top = int(values.max()) if values.size else 0
    return max(1, len(str(top)))


def _join_rows(cols: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Concatenate per-row byte columns (each (K, w) with a (K, w) shown-mask), row by row."""
    arr = np.concatenate([c for c, _ in cols], axis=1)
    mask = np.concatenate([m for _, m in cols], axis=1)
    return arr[mask].tobytes()


def _const(text: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    b = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.broadcast_to(b, (rows, len(b))), np.ones((rows, len(b)), dtype=bool)


def _float_cols(x_K: np.ndarray, decimals: int = FLOAT_DECIMALS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Columns that print floats as fixed-point text with `decimals` digits, like '%.{decimals}f'."""
    q = np.rint(np.abs(x_K) * 10**decimals).astype(np.int64)
    whole, frac = np.divmod(q, 10**decimals)
    sign = np.full((len(x_K), 1), ord("-"), dtype=np.uint8)
    wd, ws = _digits(whole, _int_width(whole))
    fd, _ = _digits(frac, decimals)
    return [
        (sign, np.signbit(x_K)[:, None]),  # like printf: -0.0 and tiny negatives print "-0.000..."
        (wd, ws),
        _const(".", len(x_K)),
        (fd, np.ones(fd.shape, dtype=bool)),
    ]


def _text_table(prefix: str, values: np.ndarray, floats: bool) -> bytes:
    """Lines `prefix a b c` for each row of a (K, 3) array."""
    K = len(values)
    if K == 0:
        return b""
    if floats and np.abs(values).max() >= 1e9:  # fixed-point digits would overflow int64: format plainly
        line = prefix + " ".join([f"%.{FLOAT_DECIMALS}f"] * values.shape[1]) + "\n"
        return ((line * K) % tuple(values.ravel().tolist())).encode("ascii")
    if not floats:
        width = _int_width(values)
    cols = [_const(prefix, K)] if prefix else []
    for j in range(values.shape[1]):
        if j:
            cols.append(_const(" ", K))
        if floats:
            cols.extend(_float_cols(values[:, j]))
        else:
            cols.append(_digits(values[:, j], width))
    cols.append(_const("\n", K))
    return _join_rows(cols)


def _check(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices_N3, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces_F3, dtype=np.int64).reshape(-1, 3)
    if not np.isfinite(v).all():
        raise MeshError("cannot write a mesh with NaN or infinite vertex coordinates")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise MeshError("cannot write a mesh whose face indices are out of range")
    return v, f


def obj_bytes(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> bytes:
    """Wavefront OBJ text: `v x y z` lines, then `f a b c` lines with 1-based indices."""
    v, f = _check(vertices_N3, faces_F3)
    return b"# vatcodec\n" + _text_table("v ", v, floats=True) + _text_table("f ", f + 1, floats=False)


def off_bytes(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> bytes:
    """OFF text: counts, vertex lines, then `3 a b c` face lines with 0-based indices."""
    v, f = _check(vertices_N3, faces_F3)
    head = f"OFF\n{len(v)} {len(f)} 0\n".encode("ascii")
    return head + _text_table("", v, floats=True) + _text_table("3 ", f, floats=False)


def ply_bytes(vertices_N3: np.ndarray, faces_F3: np.ndarray) -> bytes:
    """Binary little-endian PLY: double vertex coordinates, int32 triangle indices."""
    v, f = _check(vertices_N3, faces_F3)
    head = (
        "ply\nformat binary_little_endian 1.0\ncomment vatcodec\n"
        f"element vertex {len(v)}\nproperty double x\nproperty double y\nproperty double z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    face_rec = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face_rec["n"] = 3
    face_rec["i"] = f
    return head + v.astype("<f8").tobytes() + face_rec.tobytes()


def mesh_bytes(vertices_N3: np.ndarray, faces_F3: np.ndarray, suffix: str) -> bytes:
    """The file contents for `suffix` (one of FAST_SUFFIXES)."""
    writers = {".obj": obj_bytes, ".off": off_bytes, ".ply": ply_bytes}
    return writers[suffix.lower()](vertices_N3, faces_F3)


def write_mesh(vertices_N3: np.ndarray, faces_F3: np.ndarray, path: str | os.PathLike) -> None:
    """Writes a triangle mesh in the format given by the suffix, atomically (temp file + rename).

    Raises:
        MeshError: unsupported suffix.
        VatError: the destination cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_SUFFIXES:
        raise MeshError(f"cannot save mesh as '{path.suffix}' (supported: {' '.join(SAVE_SUFFIXES)})")
    if suffix in FAST_SUFFIXES:
        data = mesh_bytes(vertices_N3, faces_F3, suffix)
    else:
        import trimesh

        out = trimesh.Trimesh(vertices=np.asarray(vertices_N3), faces=np.asarray(faces_F3), process=False)
        data = out.export(file_type=suffix[1:])
        if isinstance(data, str):
            data = data.encode("utf-8")
    atomic_write_bytes(path, data)  # temp file + rename, keeps normal file permissions
