"""Many files in one call (`encode_many`, `decode_many`): one worker process per job, each with its own model."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vatcodec.codec.bitstream import (
    header_info,
)
from vatcodec.codec.encoding import (
    QUALITY_RESOLUTION,
    _check_effort_options,
    encode,
)
from vatcodec.codec.models import resolve_model
from vatcodec.codec.packing import check_options
from vatcodec.errors import EncodeWarning, VatError
from vatcodec.threads import choose_threads, use_threads

if TYPE_CHECKING:
    from collections.abc import Callable


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


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    """Outcome of one file of a decode batch: the mesh written, or the one-line reason it failed."""

    source: str
    output: str | None = None
    vertices: int = 0
    faces: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def batch_outputs(
    paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, suffix: str = ".vat"
) -> list[Path]:
    """`out_dir/<stem><suffix>` per input; refuses two inputs that would write the same file.

    Raises:
        VatError: two inputs share a file name stem.
    """
    outputs, seen = [], {}
    for p in paths:
        out = Path(out_dir) / (Path(p).stem + suffix)
        if out in seen:
            raise VatError(f"{seen[out]} and {p} would both be written to {out}; rename one of them")
        seen[out] = p
        outputs.append(out)
    return outputs


def _encode_one(src: str, dst: str, model, options: dict) -> EncodeResult:
    from vatcodec.fileio import atomic_write_bytes

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EncodeWarning)
            data = encode(src, model=model, **options)
        atomic_write_bytes(dst, data)
    except VatError as exc:
        return EncodeResult(source=src, error=" ".join(str(exc).split()))
    notes = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, EncodeWarning)]
    return EncodeResult(
        source=src,
        output=dst,
        nbytes=len(data),
        scales=header_info(data)["scales_present"],
        warning="; ".join(notes) or None,
    )


def _decode_one(src: str, dst: str, model, options: dict) -> DecodeResult:
    from vatcodec.codec.decoding import decode_arrays
    from vatcodec.fileio import read_input_bytes
    from vatcodec.geometry.mesh_write import write_mesh

    try:
        vertices_N3, faces_F3 = decode_arrays(read_input_bytes(src), model=model, **options)
        write_mesh(vertices_N3, faces_F3, dst)
    except VatError as exc:
        return DecodeResult(source=src, error=" ".join(str(exc).split()))
    return DecodeResult(source=src, output=dst, vertices=len(vertices_N3), faces=len(faces_F3))


_worker_model = None
_worker_per_file = False  # decode workers: resolve each file's shipped model instead of _worker_model


def _worker_init(model, threads: int, device: str | None = None) -> None:
    global _worker_model, _worker_per_file
    # The parent shares the free cores among the workers instead of each one taking all of them.
    torch.set_num_threads(threads)
    # With no model given, decode resolves each file's own shipped model; encode uses the default.
    _worker_model = resolve_model(model, device)
    _worker_per_file = model is None


def _worker_encode(src: str, dst: str, options: dict) -> EncodeResult:
    return _encode_one(src, dst, _worker_model, options)


def _worker_decode(src: str, dst: str, options: dict) -> DecodeResult:
    return _decode_one(src, dst, None if _worker_per_file else _worker_model, options)


def encode_many(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    jobs: int = 1,
    model=None,
    threads: int | None = None,
    **options,
) -> Iterator[EncodeResult]:
    """Encode several meshes into `out_dir/<stem>.vat`, yielding one result per file as each finishes.

    A file that fails is reported in its result and skipped; the others are still written. `options` are
    `encode`'s keyword arguments (scales, max_bytes, coder, seed, effort, time_limit, quality, ...; a time
    limit applies to each file). `threads`: torch threads per worker (default: the free cores shared among
    the jobs, `vatcodec.threads`). Everything that would fail every file is checked here, before the first
    file is touched.

    Raises:
        VatError: bad options, the model cannot be loaded, or two inputs would write the same output.
    """
    srcs = [str(p) for p in paths]
    dsts = [str(d) for d in batch_outputs(srcs, out_dir)]
    if jobs < 1:
        raise VatError(f"jobs must be >= 1, got {jobs}")
    net = resolve_model(model, options.get("device"))
    check_options(net, options.get("scales"), options.get("max_bytes"), options.get("coder", "auto"))
    _check_effort_options(
        options.get("effort", 0),
        options.get("time_limit"),
        options.get("quality"),
        options.get("quality_resolution", QUALITY_RESOLUTION),
        options.get("tries", 1),
    )
    if jobs == 1 or len(srcs) <= 1:
        if threads is not None:
            use_threads(threads)
        return (_encode_one(src, dst, net, options) for src, dst in zip(srcs, dsts, strict=True))
    # Workers load the checkpoint by path when there is one, else get the model pickled.
    spec = model if model is None or isinstance(model, (str, os.PathLike)) else net
    workers = min(jobs, len(srcs))
    init = (spec, choose_threads(threads, workers), options.get("device"))
    return _parallel(_worker_encode, srcs, dsts, workers, init, options)


def decode_many(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    suffix: str = ".obj",
    jobs: int = 1,
    model=None,
    device: str | None = None,
    threads: int | None = None,
    **options,
) -> Iterator[DecodeResult]:
    """Decode several .vat files into `out_dir/<stem><suffix>` in one process (or `jobs` workers).

    The start-up (imports, model load) is paid once per worker instead of once per file. A file that fails
    is reported in its result and skipped. `options` are `decode`'s keyword arguments (resolution, scales,
    faces), checked here before the first file is read. `threads`: as in `encode_many`.

    Raises:
        VatError: bad options or suffix, the model cannot be loaded, or two inputs would write the same output.
    """
    from vatcodec.codec.decoding import check_decode_options
    from vatcodec.geometry.mesh_write import SAVE_SUFFIXES

    if suffix.lower() not in SAVE_SUFFIXES:
        raise VatError(f"cannot write meshes as {suffix!r} (supported: {' '.join(SAVE_SUFFIXES)})")
    srcs = [str(p) for p in paths]
    dsts = [str(d) for d in batch_outputs(srcs, out_dir, suffix)]
    if jobs < 1:
        raise VatError(f"jobs must be >= 1, got {jobs}")
    check_decode_options(options.get("resolution", 256), options.get("scales"), options.get("faces"))
    net = resolve_model(model, device)
    # No model given: each file gets the shipped model that wrote it (`model_for_file`), loaded once each.
    per_file = None if model is None else net
    options = {**options, "device": device}
    if jobs == 1 or len(srcs) <= 1:
        if threads is not None:
            use_threads(threads)
        return (_decode_one(src, dst, per_file, options) for src, dst in zip(srcs, dsts, strict=True))
    spec = model if model is None or isinstance(model, (str, os.PathLike)) else net
    workers = min(jobs, len(srcs))
    init = (spec, choose_threads(threads, workers), device)
    return _parallel(_worker_decode, srcs, dsts, workers, init, options)


def _parallel(
    work: Callable, srcs: list[str], dsts: list[str], workers: int, init: tuple, options: dict
) -> Iterator:
    import multiprocessing

    # "spawn": forking after torch has started its thread pool can deadlock.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=init) as pool:
        futures = [pool.submit(work, s, d, options) for s, d in zip(srcs, dsts, strict=True)]
        for fut in as_completed(futures):
            yield fut.result()
