"""Many meshes in one call (`encode_many`): one worker process per job, each with its own model copy."""

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
    QualityWarning,
    _check_effort_options,
    _check_options,
    encode,
)
from vatcodec.codec.models import resolve_model
from vatcodec.errors import VatError

if TYPE_CHECKING:
    pass


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
    _worker_model = resolve_model(model)


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
    net = resolve_model(model)
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
