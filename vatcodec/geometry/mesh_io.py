"""Load, validate, normalize and save triangle meshes: the codec's only door to mesh files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vatcodec.errors import MeshError
from vatcodec.geometry.mesh_write import SAVE_SUFFIXES, write_mesh
from vatcodec.geometry.text_encoding import TEXT_SUFFIXES, TextEncodingError, bom_codec, utf8_source

if TYPE_CHECKING:
    import trimesh

# trimesh (and the networkx and SciPy it pulls in: about 0.9 s) is imported only by the functions that need it,
# so that decoding, which only writes meshes, never loads it.

SUPPORTED_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
# Loading, validating and sampling a mesh takes about 330 bytes per face at its peak (10.5M faces from a binary
# PLY: 3.4 GB, docs/performance.md); the default refuses meshes that would need more than about 7 GB.
DEFAULT_MAX_FACES = 20_000_000
BYTES_PER_FACE = 330
__all__ = ["SAVE_SUFFIXES", "SUPPORTED_SUFFIXES", "Normalization", "load_mesh", "normalize_mesh", "save_mesh"]

# Formats that are plain text: binary garbage in them is a parse failure, even though trimesh's
# OBJ reader silently returns an empty scene for it.
_TEXT_SUFFIXES = (".obj", ".off")


@dataclass(frozen=True)
class Normalization:
    """Affine map between a mesh's original frame and the unit cube.

    Attributes:
        center: Centre of the original axis-aligned bounding box.
        scale: Longest side of the original bounding box.
    """

    center: tuple[float, float, float]
    scale: float

    def to_unit(self, v_N3: np.ndarray) -> np.ndarray:
        """Maps original coordinates into the unit cube (bbox centred at 0, longest side 1)."""
        return (np.asarray(v_N3, dtype=np.float64) - np.asarray(self.center)) / self.scale

    def from_unit(self, v_N3: np.ndarray) -> np.ndarray:
        """Maps unit-cube coordinates back into the original frame."""
        return np.asarray(v_N3, dtype=np.float64) * self.scale + np.asarray(self.center)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise MeshError(f"mesh file not found: {path}")
    if path.is_dir():
        raise MeshError(f"mesh path is a directory, not a file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = " ".join(SUPPORTED_SUFFIXES)
        raise MeshError(f"unknown mesh format '{path.suffix}' for {path} (supported: {supported})")
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as e:
        raise MeshError(f"cannot read mesh file {path}: {e.strerror or e}") from None
    if suffix in _TEXT_SUFFIXES and bom_codec(head) != "utf-16" and _looks_binary(head):
        raise MeshError(f"cannot parse {path}: binary data in a text {suffix} file")


def _face_count_hint(path: Path, raw: bytes | None) -> int | None:
    """The number of faces a file declares or holds, read without parsing it; None where it cannot be told.

    `raw` is the file's bytes when the caller has them (text formats), else only the header is read.
    """
    import re

    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            data = raw if raw is not None else path.read_bytes()
            return data.count(b"\nf ") + data.startswith(b"f ")
        with open(path, "rb") as f:
            head = f.read(4096)
        if suffix in (".ply", ".off"):
            m = re.search(rb"element face (\d+)", head) if suffix == ".ply" else None
            if suffix == ".off":
                lines = [ln for ln in head.split(b"\n") if ln.strip() and not ln.lstrip().startswith(b"#")]
                m = re.match(rb"\s*(?:OFF)?\s*\d+\s+(\d+)", b" ".join(lines[:2]))
            return int(m.group(1)) if m else None
        if suffix == ".stl":
            size = path.stat().st_size
            if size >= 84 and size == 84 + 50 * int.from_bytes(head[80:84], "little"):
                return int.from_bytes(head[80:84], "little")
    except OSError:
        return None
    return None


def _check_face_count(path: Path, raw: bytes | None, max_faces: int | None) -> None:
    if max_faces is None:
        return
    n = _face_count_hint(path, raw)
    if n is not None and n > max_faces:
        need_gb = n * BYTES_PER_FACE / 1e9
        raise MeshError(
            f"{path} has {n:,} faces, more than the limit of {max_faces:,} (about {need_gb:.1f} GB to encode);"
            f" raise it with --max-faces"
        )


def _parser_input(path: Path, max_faces: int | None = DEFAULT_MAX_FACES):
    """What trimesh should read: the path itself, or the file's text re-encoded as UTF-8 (see text_encoding)."""
    import io

    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        _check_face_count(path, None, max_faces)
        return str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MeshError(f"cannot read mesh file {path}: {e.strerror or e}") from None
    _check_face_count(path, raw, max_faces)
    try:
        text = utf8_source(raw, suffix)
    except TextEncodingError as e:
        raise MeshError(f"cannot decode {path}: {e}") from None
    if text is None:
        return str(path)
    if suffix in _TEXT_SUFFIXES and _looks_binary(text[:65536]):
        raise MeshError(f"cannot parse {path}: binary data in a text {suffix} file")
    return io.BytesIO(text)


def _looks_binary(head: bytes) -> bool:
    """True for data that cannot be a text mesh (NUL or many control bytes); encoding-agnostic."""
    if not head:
        return False
    control = sum(head.count(bytes([c])) for c in (*range(0, 9), *range(14, 32)))
    return b"\x00" in head or control > 0.01 * len(head)


def _scene_parts(scene: trimesh.Scene, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Returns (vertices, faces) of every triangle geometry instance, in world coordinates."""
    import trimesh

    parts = []
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry.get(geom_name)
        faces = getattr(geom, "faces", None)
        if not isinstance(geom, trimesh.Trimesh) or faces is None or len(faces) == 0:
            continue
        v_N3 = np.asarray(geom.vertices, dtype=np.float64)
        f_F3 = np.asarray(faces, dtype=np.int64)
        # Check indices per part: after offsetting for concatenation, an out-of-range index
        # would silently point into the next part.
        if f_F3.min() < 0 or f_F3.max() >= len(v_N3):
            raise MeshError(
                f"mesh in {path} has face indices out of range "
                f"[{int(f_F3.min())}, {int(f_F3.max())}] for {len(v_N3)} vertices"
            )
        if not np.allclose(transform, np.eye(4)):
            v_N3 = trimesh.transform_points(v_N3, transform)
        parts.append((v_N3, f_F3))
    return parts


def load_mesh(path: str | os.PathLike, max_faces: int | None = DEFAULT_MAX_FACES) -> trimesh.Trimesh:
    """Loads a mesh file and flattens all its parts into one validated triangle mesh.

    A file that declares (PLY, OFF, binary STL) or holds (OBJ) more than `max_faces` faces is refused before
    it is parsed, and one whose parsed mesh has more is refused before anything else (None: no limit).

    Materials and textures are skipped (geometry only), so missing texture files are harmless.
    The raw data is kept as stored (``process=False``) so that validation sees it.

    Raises:
        MeshError: the file is missing, unreadable, of unknown format, or fails validation.
    """
    import trimesh

    path = Path(path)
    _check_readable(path)
    source = _parser_input(path, max_faces)
    try:
        # Bad coordinates make trimesh's normal computation warn; validation reports them instead.
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            if isinstance(source, str):
                scene = trimesh.load_scene(source, process=False, skip_materials=True)
            else:  # re-encoded text: the folder still resolves what the file refers to (glTF buffers)
                resolver = trimesh.resolvers.FilePathResolver(str(path))
                scene = trimesh.load_scene(
                    source,
                    file_type=path.suffix.lower()[1:],
                    resolver=resolver,
                    process=False,
                    skip_materials=True,
                )
    except Exception as e:  # noqa: BLE001 - trimesh raises anything on malformed input
        detail = " ".join(str(e).split()) or type(e).__name__
        raise MeshError(f"cannot parse {path}: {detail[:200]}") from None
    parts = _scene_parts(scene, path)
    if not parts:
        raise MeshError(f"mesh file {path} contains no triangle faces")
    total = sum(len(f) for _, f in parts)
    if max_faces is not None and total > max_faces:
        raise MeshError(
            f"{path} has {total:,} faces, more than the limit of {max_faces:,} (about"
            f" {total * BYTES_PER_FACE / 1e9:.1f} GB to encode); raise it with --max-faces"
        )
    offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    vertices_N3 = np.concatenate([v for v, _ in parts], axis=0)
    faces_F3 = np.concatenate([f + o for (_, f), o in zip(parts, offsets, strict=True)], axis=0)
    mesh = trimesh.Trimesh(vertices=vertices_N3, faces=faces_F3, process=False, validate=False)
    validate_mesh(mesh, source=str(path))
    return mesh


def _used(n_vertices: int, faces: np.ndarray) -> np.ndarray:
    """Mask of the vertices that faces refer to (a scatter: `np.unique` sorts, minutes on 10M faces)."""
    mask = np.zeros(n_vertices, dtype=bool)
    mask[faces.ravel()] = True
    return mask


def validate_mesh(mesh: trimesh.Trimesh, source: str = "mesh") -> None:
    """Checks that a mesh is usable geometry; raises MeshError with the first problem found.

    A flat mesh (zero extent along one axis but positive area) is valid; only a mesh whose
    longest bounding-box side is zero has "zero extent".
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or len(faces) == 0:
        raise MeshError(f"{source} has no faces")
    if faces.shape[1] != 3:
        raise MeshError(f"{source} faces have {faces.shape[1]} corners, expected triangles")
    if len(vertices) == 0:
        raise MeshError(f"{source} has faces but no vertices")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise MeshError(f"{source} has {bad} vertices with NaN or infinite coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(
            f"{source} has face indices out of range [{int(faces.min())}, {int(faces.max())}] "
            f"for {len(vertices)} vertices"
        )
    used = vertices[_used(len(vertices), faces)]
    extent = float((used.max(axis=0) - used.min(axis=0)).max())
    if extent <= 0.0:
        raise MeshError(f"{source} has zero extent (all vertices coincide)")
    tri_F33 = vertices[faces]
    area = (
        0.5
        * np.linalg.norm(np.cross(tri_F33[:, 1] - tri_F33[:, 0], tri_F33[:, 2] - tri_F33[:, 0]), axis=1).sum()
    )
    if not area > 0.0:
        raise MeshError(f"{source} has zero total surface area (only degenerate faces)")


def normalize_mesh(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, Normalization]:
    """Centres the bounding box at the origin and scales its longest side to 1.

    Only vertices referenced by faces define the box, so stray unused vertices cannot shrink
    the shape.
    """
    import trimesh

    validate_mesh(mesh)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    used = vertices[_used(len(vertices), np.asarray(mesh.faces))]
    lo, hi = used.min(axis=0), used.max(axis=0)
    norm = Normalization(center=tuple(float(c) for c in (lo + hi) / 2), scale=float((hi - lo).max()))
    unit = trimesh.Trimesh(vertices=norm.to_unit(vertices), faces=np.asarray(mesh.faces), process=False)
    return unit, norm


def save_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike) -> None:
    """Writes a mesh in the format given by the suffix, atomically (temp file + rename).

    Raises:
        MeshError: unsupported suffix.
        VatError: the destination cannot be written.
    """
    write_mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), path)
