"""The decode side of the codec API: .vat bytes -> mesh (`decode`), and the F-score of a file's decode."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np

from vatcodec.codec.bitstream import (
    VatFile,
    header_info,
    level_offset,
    unpack,
)
from vatcodec.codec.models import (
    as_mesh,
    file_model_id,
    model_for_file,
    model_id_of,
    prior_of,
    tables_of,
)
from vatcodec.errors import BitstreamError, EmptyShapeError, VatError

if TYPE_CHECKING:
    import trimesh

    from vatcodec.model.tokenizer import VAT

MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024  # 1024 keeps the final grid (and peak memory) near 5 GB
QUALITY_RESOLUTION = 256  # `quality` measures F on the shape decoded at decode()'s default resolution


def _fscore(data: bytes, net: VAT, ref_unit: trimesh.Trimesh, norm, resolution: int) -> float:
    """F-score of a file's decoded shape against the reference, both in the reference's unit frame."""
    from vatcodec.geometry.metrics import decoded_surface_metrics

    try:
        mesh = decode(data, model=net, resolution=resolution)
    except VatError:  # the only one a file we just wrote can raise: the decoded shape is empty
        mesh = None
    return decoded_surface_metrics(mesh, ref_unit, norm)["fscore"]


def measure_fscore(data: bytes, mesh_or_path, *, model=None, resolution: int = QUALITY_RESOLUTION) -> float:
    """F-score (tau 0.01) of a .vat file's decoded shape against a mesh, the way `encode(quality=...)` measures it.

    Both shapes are scored in the mesh's unit-cube frame (`vatcodec.geometry.metrics.surface_metrics`); an empty
    decoded shape scores 0.

    Raises:
        BitstreamError, VatError, MeshError: as `decode` and mesh loading do.
    """
    from vatcodec.geometry.mesh_io import normalize_mesh

    net = model_for_file(header_info(data), model)
    ref_unit, norm = normalize_mesh(as_mesh(mesh_or_path))
    return _fscore(data, net, ref_unit, norm, resolution)


# --- decode -----------------------------------------------------------------------------------------------------


def unpack_for(data: bytes, net: VAT) -> VatFile:
    """`unpack` with what the file's coder needs from the model: its entropy tables (range) or its prior (context)."""
    context = header_info(data)["coder"] == "context"
    return unpack(data, tables=tables_of(net), prior=prior_of(net) if context else None)


def _check_file_matches(info: dict, net: VAT) -> None:
    """`info` is the file's `header_info`: everything checked before its indices are decoded."""
    theirs = info["model_id"]
    if info["coder"] == "range" and tables_of(net) is None:
        raise VatError(
            f"the file is range-coded with the entropy tables of model {theirs}, but the loaded model"
            f" {model_id_of(net).hex()} has no entropy tables; pass the matching checkpoint with --model"
        )
    if info["coder"] == "context" and prior_of(net) is None:
        raise VatError(
            f"the file is context-coded with the prior of model {theirs}, but the loaded model"
            f" {model_id_of(net).hex()} has no context prior; pass the matching checkpoint with --model"
        )
    ours = file_model_id(net, info["coder"]).hex()
    if theirs != ours:
        raise VatError(
            f"model id mismatch: the file was encoded with model {theirs},"
            f" the loaded model is {ours}; pass the matching checkpoint with --model"
        )
    cfg = net.cfg
    if info["codebook_size"] != cfg.codebook_size or tuple(info["schedule"]) != tuple(cfg.schedule):
        raise BitstreamError(
            f"file declares codebook {info['codebook_size']} and schedule {info['schedule']}, but its model"
            f" {ours} has codebook {cfg.codebook_size} and schedule {list(cfg.schedule)}"
        )


def decimate(vertices_N3: np.ndarray, faces_F3: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """About `target` faces by quadric edge collapse (fast-simplification); meshes at or under it are kept."""
    if len(faces_F3) <= target:
        return vertices_N3, faces_F3
    try:
        import fast_simplification
    except ImportError:
        raise VatError(
            "--faces needs the fast-simplification package: pip install fast-simplification"
        ) from None
    # The simplifier can stop short of its target; asking for fewer sometimes gets there. Where no collapse
    # is left that it accepts (e.g. flat boxes), the result stays above the target.
    ask, best = target, None
    for _ in range(3):
        v_N3, f_F3 = fast_simplification.simplify(vertices_N3, faces_F3.astype(np.int32), target_count=ask)
        if best is not None and len(f_F3) >= len(best[1]):
            break
        best = (v_N3, f_F3)
        if len(f_F3) <= target:
            break
        ask = max(1, ask * target // len(f_F3) - 1)
    return np.asarray(best[0], dtype=np.float64), np.asarray(best[1], dtype=np.int64)


def check_decode_options(resolution: int, scales: int | None, faces: int | None) -> None:
    """Raises VatError for options no file can be decoded with."""
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise VatError(f"resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution}")
    if scales is not None and scales < 1:
        raise VatError(f"scales must be >= 1, got {scales}")
    if faces is not None and faces < 4:
        raise VatError(f"faces must be >= 4, got {faces}")


def decode_arrays(
    data: bytes,
    *,
    model=None,
    scales: int | None = None,
    resolution: int = 256,
    faces: int | None = None,
    device: str | None = None,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`decode` without trimesh: (vertices (N, 3) float64 in the original frame, faces (F, 3) int64).

    Args:
        device: "cpu" (default), "cuda" or "auto" for the shipped or a named model; a VAT passed as `model`
            runs where it is.
        stats: if given, filled with what the decode cost: seconds per stage and the number of field queries.

    Raises:
        as `decode`.
    """
    import time

    from vatcodec.codec.extract import GridSpec, grid_to_mesh, occupancy_grid
    from vatcodec.geometry.mesh_io import Normalization

    check_decode_options(resolution, scales, faces)
    t0 = time.perf_counter()
    info = header_info(data)  # a corrupt file fails here, before any model is loaded
    net = model_for_file(info, model, device)
    _check_file_matches(info, net)
    from vatcodec.codec.completion import stream_field

    prior = prior_of(net) if info.get("completed") else None
    # A cut file's indices and their completion come from one run of the prior (`ContextPrior.reusing_rows`).
    with contextlib.nullcontext() if prior is None else prior.reusing_rows():
        vat = unpack_for(data, net)
        n = min(scales or vat.num_scales, vat.num_scales)
        t1 = time.perf_counter()
        # The plane transformer's products sum in a thread-count-dependent order (2e-7 apart at 1 vs 2 threads,
        # enough to move marching-cubes vertices); `stream_field` runs this small part on one thread, so the mesh
        # is the same for any thread count. The per-query MLP that follows splits by rows and is thread-invariant.
        field = stream_field(net, vat.indices[:n], vat.completed, cut=n == vat.num_scales)
    offset = level_offset(vat) if n == vat.num_scales else 0.0  # the file's level belongs to its full stream
    if offset:
        field.iso_logit += offset
    t2 = time.perf_counter()
    values, grid = occupancy_grid(field, resolution)
    t3 = time.perf_counter()
    vertices_N3, faces_F3 = grid_to_mesh(values, GridSpec(resolution))
    t4 = time.perf_counter()
    if len(faces_F3) == 0:
        raise EmptyShapeError(
            "the decoded shape is empty: its occupancy field has no surface in the unit cube"
        )
    vertices_N3 = Normalization(center=tuple(vat.center), scale=vat.scale).from_unit(vertices_N3)
    if faces is not None:
        vertices_N3, faces_F3 = decimate(vertices_N3, faces_F3, faces)
    if stats is not None:
        stats.update(
            load_s=t1 - t0,
            planes_s=t2 - t1,
            queries=grid.evaluated,
            queries_s=grid.field_seconds,
            grid_s=t3 - t2,
            marching_cubes_s=t4 - t3,
            finish_s=time.perf_counter() - t4,
            faces=len(faces_F3),
        )
    return vertices_N3, faces_F3


def decode(
    data: bytes,
    *,
    model=None,
    scales: int | None = None,
    resolution: int = 256,
    faces: int | None = None,
    device: str | None = None,
) -> trimesh.Trimesh:
    """Reconstruct a mesh from .vat bytes, in the original position and size.

    Args:
        data: the bytes of a .vat file.
        model: the VAT that wrote the file, a checkpoint path, or None for the shipped default model.
        scales: decode only this many leading scales (a coarser shape); at most the scales present.
        resolution: marching-cubes cells per axis over the shape's bounding cube.
        faces: decimate the output to this many triangles (quadric edge collapse); the simplifier may stop
            above it on shapes it cannot reduce further.
        device: where the decoder runs: "cpu" (default), "cuda" or "auto".

    Raises:
        BitstreamError: the bytes are not a valid .vat file.
        VatError: the file was written by another model, bad options, or the decoded shape is empty.
    """
    import trimesh

    vertices_N3, faces_F3 = decode_arrays(
        data, model=model, scales=scales, resolution=resolution, faces=faces, device=device
    )
    return trimesh.Trimesh(vertices=vertices_N3, faces=faces_F3, process=False)
