"""The codec's Python API: mesh -> .vat bytes (`encode`, `encode_many`) and .vat bytes -> mesh (`decode`)."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import struct
import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vatcodec.bitstream import (
    CODER_MINOR,
    CODERS,
    EXT_FSCORE,
    FORMAT_MAJOR,
    VatFile,
    header_info,
    index_bits_for,
    pack,
    unpack,
)
from vatcodec.errors import BitstreamError, EmptyShapeError, VatError

if TYPE_CHECKING:
    import trimesh

    from vatcodec.tokenizer import VAT

DEFAULT_MODEL_NAME = "vat-s.safetensors"
CODER_CHOICES = ("auto", *CODERS)
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024  # 1024 keeps the final grid (and peak memory) near 5 GB
EFFORT_LEVELS = (0, 1, 2, 3)  # the same as vatcodec.effort's, kept here so option checks import no more
QUALITY_RESOLUTION = 256  # `quality` measures F on the shape decoded at decode()'s default resolution
TIGHT_BUDGET = 0.9  # effort > 0 also refines one scale fewer when the effort-0 file fills 90% of max_bytes


class QualityWarning(UserWarning):
    """`encode(quality=F)` did not reach F: the file returned is the best one it measured."""


def default_model_path() -> Path:
    """Where the shipped default model lives inside the package."""
    return Path(__file__).resolve().parent / "weights" / DEFAULT_MODEL_NAME


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> VAT:
    # mtime and size are in the key so a checkpoint rewritten in place is loaded again.
    from vatcodec.checkpoint import load_model

    return load_model(path)


def get_model(path: str | os.PathLike | None = None) -> VAT:
    """The model of a checkpoint (the shipped default when `path` is None), loaded once per process.

    Raises:
        VatError: the checkpoint is missing or unreadable.
    """
    if path is None:
        path = default_model_path()
        if not path.is_file():
            raise VatError(f"the default model is missing ({path}); pass a checkpoint with --model PATH")
    path = Path(path)
    try:
        st = path.resolve().stat()
    except OSError:
        raise VatError(f"model checkpoint not found: {path}") from None
    return _load_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _resolve_model(model) -> VAT:
    if model is None or isinstance(model, (str, os.PathLike)):
        return get_model(model)
    if not hasattr(model, "cfg") or not callable(getattr(model, "encode", None)):
        raise TypeError(f"model must be a VAT, a checkpoint path or None, got {type(model).__name__}")
    return model


def _model_id(model: VAT) -> bytes:
    ident = getattr(model, "model_id", None)
    if ident is None:  # a model built in memory rather than loaded: hash it as a checkpoint would
        from vatcodec.checkpoint import model_id

        ident = model_id(model.cfg, model.state_dict())
    return bytes(ident)


def _tables(model: VAT):
    """The model's entropy tables `freq_SK`, or None (old checkpoints, test models)."""
    return getattr(model, "entropy_freq_SK", None)


def _file_model_id(model: VAT, coder: str) -> bytes:
    """The id a file carries: the decoder's, and for the range coder also the tables it was coded with.

    Raw and zstd files do not depend on the tables, so giving a model tables keeps its raw/zstd files valid.
    """
    if coder != "range":
        return _model_id(model)
    ident = getattr(model, "entropy_id", None)
    if ident is None:
        from vatcodec.entropy import tables_id

        ident = tables_id(_model_id(model), _tables(model))
    return bytes(ident)


# --- encode -----------------------------------------------------------------------------------------------------


def _as_mesh(mesh_or_path) -> trimesh.Trimesh:
    import trimesh

    from vatcodec.mesh_io import load_mesh, validate_mesh

    if isinstance(mesh_or_path, (str, os.PathLike)):
        return load_mesh(mesh_or_path)
    if isinstance(mesh_or_path, trimesh.Trimesh):
        validate_mesh(mesh_or_path)
        return mesh_or_path
    raise TypeError(f"expected a mesh file path or a trimesh.Trimesh, got {type(mesh_or_path).__name__}")


def _pack_smallest(vat: VatFile, coder: str, net: VAT) -> bytes:
    if coder == "auto":  # every coder the model can use; ties go to the first (raw needs no decompressor)
        coders = ["raw", "zstd"] + (["range"] if _tables(net) is not None else [])
    else:
        coders = [coder]
    files = []
    for c in coders:  # the id of what decoding needs, and the lowest format version that defines the coder
        version = (FORMAT_MAJOR, max(vat.version[1], CODER_MINOR[c]))
        fields = dataclasses.replace(vat, coder=c, model_id=_file_model_id(net, c), version=version)
        files.append(pack(fields, tables=_tables(net)))
    return min(files, key=len)


def _check_options(net: VAT, scales: int | None, max_bytes: int | None, coder: str) -> None:
    cfg = net.cfg
    if coder not in CODER_CHOICES:
        raise VatError(f"unknown coder {coder!r} (choose from {', '.join(CODER_CHOICES)})")
    if coder == "range" and _tables(net) is None:
        raise VatError(
            f"the range coder needs entropy tables, and model {_model_id(net).hex()} has none"
            " (add them with python -m training.token_stats)"
        )
    total = len(cfg.schedule)
    if scales is not None and not 1 <= scales <= total:
        raise VatError(f"scales must be in 1..{total} for this model, got {scales}")
    if max_bytes is not None and max_bytes < 1:
        raise VatError(f"max bytes must be positive, got {max_bytes}")


def _check_effort_options(
    effort: int, time_limit: float | None, quality: float | None, quality_resolution: int
) -> None:
    if isinstance(effort, bool) or effort not in EFFORT_LEVELS:
        raise VatError(f"effort must be one of {', '.join(map(str, EFFORT_LEVELS))}, got {effort!r}")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and 0 < time_limit < math.inf):
        raise VatError(f"time limit must be a positive number of seconds, got {time_limit!r}")
    if quality is not None and not (isinstance(quality, (int, float)) and 0 < quality <= 1):
        raise VatError(f"quality must be an F-score in (0, 1], got {quality!r}")
    if not MIN_RESOLUTION <= quality_resolution <= MAX_RESOLUTION:
        raise VatError(
            f"quality resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {quality_resolution}"
        )


def _fscore(data: bytes, net: VAT, ref_unit: trimesh.Trimesh, norm, resolution: int) -> float:
    """F-score of a file's decoded shape against the reference, both in the reference's unit frame."""
    from vatcodec.metrics import decoded_surface_metrics

    try:
        mesh = decode(data, model=net, resolution=resolution)
    except VatError:  # the only one a file we just wrote can raise: the decoded shape is empty
        mesh = None
    return decoded_surface_metrics(mesh, ref_unit, norm)["fscore"]


def measure_fscore(data: bytes, mesh_or_path, *, model=None, resolution: int = QUALITY_RESOLUTION) -> float:
    """F-score (tau 0.01) of a .vat file's decoded shape against a mesh, the way `encode(quality=...)` measures it.

    Both shapes are scored in the mesh's unit-cube frame (`vatcodec.metrics.surface_metrics`); an empty
    decoded shape scores 0.

    Raises:
        BitstreamError, VatError, MeshError: as `decode` and mesh loading do.
    """
    from vatcodec.mesh_io import normalize_mesh

    net = _resolve_model(model)
    ref_unit, norm = normalize_mesh(_as_mesh(mesh_or_path))
    return _fscore(data, net, ref_unit, norm, resolution)


def encode(
    mesh_or_path,
    *,
    model=None,
    scales: int | None = None,
    max_bytes: int | None = None,
    coder: str = "auto",
    seed: int = 0,
    effort: int = 0,
    time_limit: float | None = None,
    quality: float | None = None,
    quality_resolution: int = QUALITY_RESOLUTION,
    progress=None,
) -> bytes:
    """Compress a mesh into .vat bytes; the same input, model and options always give the same bytes.

    Args:
        mesh_or_path: a mesh file path or a `trimesh.Trimesh`.
        model: a VAT, a checkpoint path, or None for the shipped default model.
        scales: keep only this many leading scales (coarse to fine); None keeps all.
        max_bytes: keep the largest prefix of scales whose whole file fits in this many bytes. With effort > 0
            the refined file fits too; when the effort-0 file fills more than 90% of the budget, one scale
            fewer is refined as well and competes with it.
        coder: payload coder: "raw", "zstd", "range" (needs a model with entropy tables), or "auto" for the
            smallest of those the model can use.
        seed: seed of the surface sampling fed to the encoder and of the occupancy samples that effort 1-3
            refine against (fixed so encoding is deterministic).
        effort: 0 is one encoder pass; 1, 2, 3 refine the indices of the prefix being written through the
            frozen decoder against the shape's own occupancy samples, with more work per level (see
            `vatcodec.effort`), then keep, among effort 0's file and the best file of each refinement stage,
            the one with the best quick F-score. A higher effort never gives a worse occupancy loss on those
            samples than 0, nor a worse quick F-score.
        time_limit: seconds for the whole call; the refinement stops when they run out and keeps the best
            indices found so far (the bytes then depend on the machine's speed). None: no limit.
        quality: the smallest file whose F-score against the input (tau 0.01, decoded at
            `quality_resolution`, measured here) is at least this, found by bisection over the scale prefixes
            (up to `scales` / `max_bytes`), largest first; this assumes F grows with the prefix, and each
            probed prefix gets the full `effort`. The measured F is recorded in the header. When the largest
            file does not reach it, that file is returned and a `QualityWarning` says so; a time limit that
            ends the bisection early returns the smallest file found that reaches it.
        quality_resolution: marching-cubes resolution at which `quality` measures F.
        progress: called as `progress(fraction, what)` while effort or quality work runs.

    Raises:
        MeshError: the mesh cannot be loaded or is invalid.
        VatError: bad options, or `max_bytes` is below the size of a one-scale file.
    """
    from vatcodec.mesh_io import normalize_mesh
    from vatcodec.sampling import sample_surface

    start = time.monotonic()
    deadline = None if time_limit is None else start + time_limit
    net = _resolve_model(model)
    cfg = net.cfg
    _check_options(net, scales, max_bytes, coder)
    _check_effort_options(effort, time_limit, quality, quality_resolution)
    unit, norm = normalize_mesh(_as_mesh(mesh_or_path))
    points_N3, normals_N3 = sample_surface(unit, cfg.num_points, seed)
    surface_1N6 = torch.from_numpy(np.concatenate([points_N3, normals_N3], axis=1).astype(np.float32))[None]
    mu_1KC = None
    if effort == 0:
        with torch.inference_mode():
            indices = [t[0].numpy().astype(np.int64) for t in net.encode(surface_1N6)]  # per scale (L_s,)
    else:
        with torch.no_grad():  # not inference mode: the refinement builds autograd graphs on mu
            mu_1KC, _ = net.encoder(surface_1N6)
            indices = [t[0].numpy().astype(np.int64) for t in net.vq.encode(mu_1KC)]
    base = VatFile(
        model_id=_model_id(net),  # replaced per coder by _pack_smallest
        codebook_size=cfg.codebook_size,
        index_bits=index_bits_for(cfg.codebook_size),
        schedule=tuple(cfg.schedule),
        indices=indices,
        center=norm.center,
        scale=norm.scale,
    )

    def packed(idx_L: list[np.ndarray], fscore: float | None = None) -> bytes:
        # With `quality` the F-score extension is always there, so budgets count its 6 bytes.
        if fscore is None and quality is not None:
            fscore = 0.0
        extensions = {} if fscore is None else {EXT_FSCORE: struct.pack("<f", fscore)}
        return _pack_smallest(
            dataclasses.replace(base, indices=list(idx_L), extensions=extensions), coder, net
        )

    def fits(idx_L: list[np.ndarray]) -> bool:
        return max_bytes is None or len(packed(idx_L)) <= max_bytes

    keep = scales or len(cfg.schedule)
    for top in range(keep, 0, -1):
        data = packed(indices[:top])
        if max_bytes is None or len(data) <= max_bytes:
            break
    else:
        raise VatError(
            f"cannot fit in {max_bytes} bytes: the smallest file (1 scale) takes {len(data)} bytes"
        )
    if effort == 0 and quality is None:
        return data

    samples = None

    def refined(n: int, until: float | None, what: str, share: float = 1.0):
        """The refinement of prefix n at this effort (`vatcodec.effort.Result`), or None when there is none."""
        nonlocal samples
        if effort == 0 or (until is not None and time.monotonic() >= until):
            return None
        from vatcodec.effort import occupancy_samples, refine

        if samples is None:
            samples = occupancy_samples(unit, seed)
        report = None if progress is None else (lambda f: progress(f, what))
        # A prefix must fit the budget too: the entropy coders' sizes depend on the indices.
        return refine(
            net, samples, mu_1KC, n, effort, deadline=until, accept=fits, progress=report, share=share
        )

    def best_of(prefixes: list[int], until: float | None) -> list[np.ndarray]:
        """The best refined indices of these prefixes (each refined with an equal share of the work)."""
        candidates = []  # (indices, loss on the shape's samples), effort 0's file of prefixes[0] first
        for i, n in enumerate(prefixes):
            left = len(prefixes) - i
            part = None if until is None else time.monotonic() + (until - time.monotonic()) / left
            result = refined(n, part, f"effort {effort}, {n} scales", share=1.0 / len(prefixes))
            if result is None:  # out of time
                break
            if not candidates:
                candidates.append((indices[:n], result.loss0))
            # The guarantee is against effort 0's file: a smaller prefix must beat its loss, not just its own.
            candidates += [(idx_L, loss) for idx_L, loss in result.checkpoints if loss <= candidates[0][1]]
        if len(candidates) <= 1:
            return indices[: prefixes[0]]
        if until is not None and time.monotonic() >= until:
            return min(candidates, key=lambda c: c[1])[0]
        # The lowest loss is not always the best surface: a quick F-score picks (ties: the lower loss).
        from vatcodec.effort import fscore_proxy

        if progress is not None:
            progress(1.0, f"effort {effort}: choosing among {len(candidates)} files")
        scores = [fscore_proxy(net, idx_L, unit) for idx_L, _ in candidates]
        return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -candidates[i][1]))][0]

    if quality is not None:
        return _encode_for_quality(
            lambda n, until: best_of([n], until), packed,
            lambda data: _fscore(data, net, unit, norm, quality_resolution), top, quality, deadline, progress,
        )  # fmt: skip
    # Refined indices code to more bytes than the encoder's (zstd/range), so a budget that the effort-0 file
    # nearly fills leaves the refinement no room. Then the next smaller prefix, which has room, is refined too.
    tight = max_bytes is not None and top > 1 and len(data) > TIGHT_BUDGET * max_bytes
    return packed(best_of([top, top - 1] if tight else [top], deadline))


def _encode_for_quality(indices_for, packed, measure, top: int, quality: float, deadline, progress) -> bytes:
    """Bisection over prefixes 1..top for the smallest whose measured F reaches `quality`; `top` goes first.

    Probing the largest prefix first settles the unreachable case in one probe. Under a time limit each probe's
    refinement gets an equal share of the time left, and the search stops once the limit has passed.
    """

    def probe(n: int, probes_left: int) -> tuple[bytes, float]:
        until = None if deadline is None else time.monotonic() + (deadline - time.monotonic()) / probes_left
        if progress is not None:
            progress(0.0, f"quality: {n} scales")
        idx_L = indices_for(n, until)
        if progress is not None:
            progress(1.0, f"quality: measuring F of {n} scales")
        f = measure(packed(idx_L))
        return packed(idx_L, f), f

    data, f = probe(top, 1 + math.ceil(math.log2(top)))
    if f < quality:
        cut = deadline is not None and time.monotonic() >= deadline
        warnings.warn(
            QualityWarning(
                f"F-score {quality:g} is not reached{' within the time limit' if cut else ''}: the largest"
                f" file ({top} scales, {len(data)} bytes) measures F = {f:.4f}; wrote it"
            ),
            stacklevel=3,
        )
        return data
    lo, hi = 1, top - 1  # the smallest reaching prefix is in lo..hi, or it is the best one found so far
    while lo <= hi and (deadline is None or time.monotonic() < deadline):
        n = (lo + hi) // 2
        candidate, f = probe(n, math.ceil(math.log2(hi - lo + 2)))
        if f >= quality:
            data, hi = candidate, n - 1
        else:
            lo = n + 1
    return data


# --- decode -----------------------------------------------------------------------------------------------------


def _check_file_matches(info: dict, net: VAT) -> None:
    """`info` is the file's `header_info`: everything checked before its indices are decoded."""
    theirs = info["model_id"]
    if info["coder"] == "range" and _tables(net) is None:
        raise VatError(
            f"the file is range-coded with the entropy tables of model {theirs}, but the loaded model"
            f" {_model_id(net).hex()} has no entropy tables; pass the matching checkpoint with --model"
        )
    ours = _file_model_id(net, info["coder"]).hex()
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


def _decimate(vertices_N3: np.ndarray, faces_F3: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
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


def decode(
    data: bytes,
    *,
    model=None,
    scales: int | None = None,
    resolution: int = 256,
    faces: int | None = None,
) -> trimesh.Trimesh:
    """Reconstruct a mesh from .vat bytes, in the original position and size.

    Args:
        data: the bytes of a .vat file.
        model: the VAT that wrote the file, a checkpoint path, or None for the shipped default model.
        scales: decode only this many leading scales (a coarser shape); at most the scales present.
        resolution: marching-cubes cells per axis over the shape's bounding cube.
        faces: decimate the output to this many triangles (quadric edge collapse); the simplifier may stop
            above it on shapes it cannot reduce further.

    Raises:
        BitstreamError: the bytes are not a valid .vat file.
        VatError: the file was written by another model, bad options, or the decoded shape is empty.
    """
    import trimesh

    from vatcodec.extract import extract_mesh
    from vatcodec.mesh_io import Normalization

    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise VatError(f"resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution}")
    if scales is not None and scales < 1:
        raise VatError(f"scales must be >= 1, got {scales}")
    if faces is not None and faces < 4:
        raise VatError(f"faces must be >= 4, got {faces}")
    info = header_info(data)  # a corrupt file fails here, before any model is loaded
    net = _resolve_model(model)
    _check_file_matches(info, net)
    vat = unpack(data, tables=_tables(net))
    n = min(scales or vat.num_scales, vat.num_scales)
    indices = [torch.from_numpy(np.asarray(a, dtype=np.int64))[None] for a in vat.indices[:n]]  # (1, L_s)
    with torch.inference_mode():
        field = net.decode(indices)
    vertices_N3, faces_F3 = extract_mesh(field, resolution=resolution)
    if len(faces_F3) == 0:
        raise EmptyShapeError(
            "the decoded shape is empty: its occupancy field has no surface in the unit cube"
        )
    vertices_N3 = Normalization(center=tuple(vat.center), scale=vat.scale).from_unit(vertices_N3)
    if faces is not None:
        vertices_N3, faces_F3 = _decimate(vertices_N3, faces_F3, faces)
    return trimesh.Trimesh(vertices=vertices_N3, faces=faces_F3, process=False)


def recode(data: bytes, *, model=None, coder: str = "auto", scales: int | None = None) -> bytes:
    """Re-code a .vat file's tokens with another coder and/or keep a prefix of its scales.

    The mesh is not encoded again: the indices stay identical, only the payload coding (and, for the range coder,
    the model id) change. Extensions are kept.

    Raises:
        BitstreamError: the bytes are not a valid .vat file.
        VatError: the file was written by another model, or bad options.
    """
    info = header_info(data)
    net = _resolve_model(model)
    _check_file_matches(info, net)
    _check_options(net, scales, None, coder)
    vat = unpack(data, tables=_tables(net))
    keep = min(scales or vat.num_scales, vat.num_scales)
    return _pack_smallest(dataclasses.replace(vat, indices=vat.indices[:keep]), coder, net)


# --- batches ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EncodeResult:
    """Outcome of one file of a batch: the output written, or the one-line reason it failed."""

    source: str
    output: str | None = None
    nbytes: int = 0
    scales: int = 0
    error: str | None = None
    warning: str | None = None  # e.g. `quality` not reached: the file is written all the same

    @property
    def ok(self) -> bool:
        return self.error is None


def batch_outputs(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """`out_dir/<stem>.vat` per input; refuses two inputs that would write the same file.

    Raises:
        VatError: two inputs share a file name stem.
    """
    outputs, seen = [], {}
    for p in paths:
        out = Path(out_dir) / (Path(p).stem + ".vat")
        if out in seen:
            raise VatError(f"{seen[out]} and {p} would both be written to {out}; rename one of them")
        seen[out] = p
        outputs.append(out)
    return outputs


def _encode_one(src: str, dst: str, model, options: dict) -> EncodeResult:
    from vatcodec.bitstream import header_info
    from vatcodec.fileio import atomic_write_bytes

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", QualityWarning)
            data = encode(src, model=model, **options)
        atomic_write_bytes(dst, data)
    except VatError as exc:
        return EncodeResult(source=src, error=" ".join(str(exc).split()))
    notes = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, QualityWarning)]
    return EncodeResult(
        source=src,
        output=dst,
        nbytes=len(data),
        scales=header_info(data)["scales_present"],
        warning="; ".join(notes) or None,
    )


_worker_model = None


def _worker_init(model, jobs: int) -> None:
    global _worker_model
    # Share the cores among the workers instead of each one taking all of them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    _worker_model = _resolve_model(model)


def _worker_encode(src: str, dst: str, options: dict) -> EncodeResult:
    return _encode_one(src, dst, _worker_model, options)


def encode_many(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    jobs: int = 1,
    model=None,
    **options,
) -> Iterator[EncodeResult]:
    """Encode several meshes into `out_dir/<stem>.vat`, yielding one result per file as each finishes.

    A file that fails is reported in its result and skipped; the others are still written. `options` are
    `encode`'s keyword arguments (scales, max_bytes, coder, seed, effort, time_limit, quality, ...; a time
    limit applies to each file). Everything that would fail every file is checked here, before the first
    file is touched.

    Raises:
        VatError: bad options, the model cannot be loaded, or two inputs would write the same output.
    """
    srcs = [str(p) for p in paths]
    dsts = [str(d) for d in batch_outputs(srcs, out_dir)]
    if jobs < 1:
        raise VatError(f"jobs must be >= 1, got {jobs}")
    net = _resolve_model(model)
    _check_options(net, options.get("scales"), options.get("max_bytes"), options.get("coder", "auto"))
    _check_effort_options(
        options.get("effort", 0),
        options.get("time_limit"),
        options.get("quality"),
        options.get("quality_resolution", QUALITY_RESOLUTION),
    )
    if jobs == 1 or len(srcs) <= 1:
        return (_encode_one(src, dst, net, options) for src, dst in zip(srcs, dsts, strict=True))
    # Workers load the checkpoint by path when there is one, else get the model pickled.
    spec = model if model is None or isinstance(model, (str, os.PathLike)) else net
    return _encode_parallel(srcs, dsts, spec, min(jobs, len(srcs)), options)


def _encode_parallel(
    srcs: list[str], dsts: list[str], spec, workers: int, options: dict
) -> Iterator[EncodeResult]:
    import multiprocessing

    # "spawn": forking after torch has started its thread pool can deadlock.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(spec, workers)
    ) as pool:
        futures = [pool.submit(_worker_encode, s, d, options) for s, d in zip(srcs, dsts, strict=True)]
        for fut in as_completed(futures):
            yield fut.result()
