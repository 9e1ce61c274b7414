"""The encode side of the codec API: mesh -> .vat bytes (`encode`), with effort, budgets and quality targets."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import struct
import time
import warnings

import numpy as np
import torch

from vatcodec.codec.bitstream import (
    EXT_FSCORE,
    VatFile,
    index_bits_for,
    level_extension,
)
from vatcodec.codec.decoding import (
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    QUALITY_RESOLUTION,
    _fscore,
)
from vatcodec.codec.level import choose_level, refinement_deadline
from vatcodec.codec.models import (
    as_mesh,
    device_of,
    model_id_of,
    prior_of,
    resolve_model,
)
from vatcodec.codec.packing import check_options, pack_smallest
from vatcodec.codec.quality import encode_for_quality
from vatcodec.codec.tries import FirstFile, best_completion, best_model_file, best_try
from vatcodec.errors import BudgetError, TimeLimitWarning, VatError

EFFORT_LEVELS = (0, 1, 2, 3)  # the same as vatcodec.codec.effort's, kept here so option checks import no more
LEVEL_BYTES = 3  # what a surface-level extension adds to a file (tag, length, value)
MAX_TRIES = 64  # surface samplings an encode may try (`tries`)
TIGHT_BUDGET = 0.9  # effort > 0 also refines one scale fewer when the effort-0 file fills 90% of max_bytes


# Default `time_limit` of each effort level, in seconds per file: the refinement keeps the best tokens seen, so
# stopping is safe, and a limit keeps a loaded machine from turning seconds into many minutes (measured: see
# docs/performance.md). 0 (or the CLI's --time-limit 0) removes it.
DEFAULT_TIME_LIMITS = {1: 10.0, 2: 30.0, 3: 75.0}


def effective_time_limit(effort: int, time_limit: float | None) -> float | None:
    """The time limit an encode runs under: the default for its effort when None, no limit for 0."""
    if time_limit is None:
        return DEFAULT_TIME_LIMITS.get(effort)
    return None if time_limit == 0 else float(time_limit)


def _check_effort_options(
    effort: int, time_limit: float | None, quality: float | None, quality_resolution: int, tries: int = 1
) -> None:
    if isinstance(effort, bool) or effort not in EFFORT_LEVELS:
        raise VatError(f"effort must be one of {', '.join(map(str, EFFORT_LEVELS))}, got {effort!r}")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and 0 <= time_limit < math.inf):
        raise VatError(f"time limit must be a number of seconds >= 0 (0: no limit), got {time_limit!r}")
    if quality is not None and not (isinstance(quality, (int, float)) and 0 < quality <= 1):
        raise VatError(f"quality must be an F-score in (0, 1], got {quality!r}")
    if not MIN_RESOLUTION <= quality_resolution <= MAX_RESOLUTION:
        raise VatError(
            f"quality resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {quality_resolution}"
        )
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= MAX_TRIES:
        raise VatError(f"tries must be an integer in 1..{MAX_TRIES}, got {tries!r}")


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
    device: str | None = None,
    max_faces: int | None = None,
    level_search: bool | None = None,
    tries: int = 1,
    also_models: tuple = (),
) -> bytes:
    """Compress a mesh into .vat bytes; the same input, model and options always give the same bytes.

    Args:
        mesh_or_path: a mesh file path or a `trimesh.Trimesh`.
        model: a VAT, a checkpoint path, or None for the shipped default model.
        scales: keep only this many leading scales (coarse to fine); None keeps all.
        max_bytes: keep the largest prefix of scales whose whole file fits in this many bytes. With the context
            coder ("auto" or "context", a model with a prior) and no `scales`, a budget that cuts the stream is
            filled to the token instead: the file stops inside a scale and the decoder completes the rest from
            the prior (coder 4, `vatcodec.codec.completion`). With effort > 0 the refined file fits too; when the
            effort-0 file fills more than 90% of the budget, one scale fewer is refined as well and competes with
            it, and the refined stream, the same completed and effort 0's cut stream compete by quick F-score.
        coder: payload coder: "raw", "zstd", "range" (needs a model with entropy tables), "context" (needs a
            model with a prior, `prior_of`), or "auto" for the smallest of those the model can use.
        seed: seed of the surface sampling fed to the encoder and of the occupancy samples that effort 1-3
            refine against (fixed so encoding is deterministic).
        effort: 0 is one encoder pass; 1, 2, 3 refine the indices of the prefix being written through the
            frozen decoder against the shape's own occupancy samples, with more work per level (see
            `vatcodec.codec.effort`), then keep, among effort 0's file and the best file of each refinement stage,
            the one with the best quick F-score. A higher effort never gives a worse occupancy loss on those
            samples than 0, nor a worse quick F-score.
        time_limit: seconds for the call; the refinement stops when they run out (at 1 - LEVEL_SEARCH_SHARE of
            them when the level search follows, which then starts no candidate past the limit) and keeps the
            best indices found so far (the bytes then depend on the machine's speed), and a `TimeLimitWarning`
            says where it stopped.
            None: the effort's default (`DEFAULT_TIME_LIMITS`; none for effort 0); 0: no limit.
        quality: the smallest file whose F-score against the input (tau 0.01, decoded at
            `quality_resolution`, measured here) is at least this, found by bisection over the scale prefixes
            (up to `scales` / `max_bytes`), largest first; this assumes F grows with the prefix, and each
            probed prefix gets the full `effort`. The measured F is recorded in the header. When the largest
            file does not reach it, that file is returned and a `QualityWarning` says so; a time limit that
            ends the bisection early returns the smallest file found that reaches it.
        quality_resolution: marching-cubes resolution at which `quality` measures F.
        progress: called as `progress(fraction, what)` while effort or quality work runs.
        device: where the encoder runs for the shipped or a named model: "cpu" (default), "cuda" or "auto".
            Effort 1-3 and `quality` run on the CPU only.
        max_faces: a mesh file with more faces is refused before it is parsed (None: 20M, about 7 GB of
            memory; 0: no limit).
        level_search: choose the surface level of the written file by quick F-scores against the input
            (`choose_level`) and store it in the file (3 bytes, only when it differs from the model's, and
            only when it still fits `max_bytes`). None: on for effort 1-3, off for effort 0. Not used with
            `quality`, whose bisection measures files at the model's level.
        tries: encode this many samplings of the surface (seeds `seed` .. `seed + tries - 1`) and keep the one
            whose file (as effort 0 writes it, budget and completion included) has the best quick F-score
            against the input, before the level search and any refinement; about 1 s a try. The decoder needs
            nothing more. Not used with `quality`.
        also_models: other models (VATs, checkpoint paths or bundled names such as "vat-tp2q") to encode with
            too, with the same options; the file whose decode has the best quick F-score against the input wins
            (`best_model_file`). A file names its model: decoders need the chosen one. Not with `quality`.

    Raises:
        MeshError: the mesh cannot be loaded or is invalid.
        BudgetError: `max_bytes` is below the size of a one-scale file (a VatError).
        VatError: bad options.
    """
    from vatcodec.geometry.mesh_io import normalize_mesh
    from vatcodec.geometry.sampling import sample_surface

    if also_models:
        if quality is not None:
            raise VatError("--also-model does not combine with --quality")
        mesh = as_mesh(mesh_or_path, max_faces)
        options = dict(
            scales=scales, max_bytes=max_bytes, coder=coder, seed=seed, effort=effort, device=device
        )
        options.update(time_limit=time_limit, progress=progress, level_search=level_search, tries=tries)
        return best_model_file(
            mesh, [model, *also_models], lambda m: encode(mesh, model=m, **options), device
        )
    start = time.monotonic()
    limit = effective_time_limit(effort, time_limit)
    deadline = None if limit is None else start + limit
    net = resolve_model(model, device)
    cfg = net.cfg
    check_options(net, scales, max_bytes, coder)
    _check_effort_options(effort, time_limit, quality, quality_resolution, tries)
    if quality is not None:
        tries = 1
    dev = device_of(net)
    if dev.type != "cpu" and (effort > 0 or quality is not None):
        raise VatError("--effort 1-3 and --quality run on the CPU only; use --device cpu with them")
    unit, norm = normalize_mesh(as_mesh(mesh_or_path, max_faces))

    def encoded(k: int) -> tuple[list[np.ndarray], torch.Tensor | None]:
        """The encoder's indices of the surface sampled with seed + k, and its mu when effort refines it."""
        points_N3, normals_N3 = sample_surface(unit, cfg.input_points, seed + k)
        surface_1N6 = torch.from_numpy(np.concatenate([points_N3, normals_N3], axis=1).astype(np.float32))[
            None
        ]
        if effort == 0:
            from vatcodec.threads import one_thread

            with torch.inference_mode(), one_thread():  # the same bytes for any thread count
                per_scale = net.encode(surface_1N6.to(dev))
                return [t[0].cpu().numpy().astype(np.int64) for t in per_scale], None  # per scale (L_s,)
        with torch.no_grad():  # not inference mode: the refinement builds autograd graphs on mu
            mu_1KC, _ = net.posterior(surface_1N6)
            return [t[0].numpy().astype(np.int64) for t in net.vq.encode(mu_1KC)], mu_1KC

    base = VatFile(
        model_id=model_id_of(net),  # replaced per coder by pack_smallest
        codebook_size=cfg.codebook_size,
        index_bits=index_bits_for(cfg.codebook_size),
        schedule=tuple(cfg.schedule),
        indices=[],  # per file, in packed()
        center=norm.center,
        scale=norm.scale,
    )

    def packed(
        idx_L: list[np.ndarray], fscore: float | None = None, level: int = 0, completed: bool = False
    ) -> bytes:
        # With `quality` the F-score extension is always there, so budgets count its 6 bytes.
        if fscore is None and quality is not None:
            fscore = 0.0
        extensions = ({} if fscore is None else {EXT_FSCORE: struct.pack("<f", fscore)}) | level_extension(
            level
        )
        return pack_smallest(
            dataclasses.replace(base, indices=list(idx_L), extensions=extensions, completed=completed),
            coder,
            net,
        )

    def fits(idx_L: list[np.ndarray]) -> bool:
        return max_bytes is None or len(packed(idx_L)) <= max_bytes

    keep = scales or len(cfg.schedule)
    search = (effort > 0 if level_search is None else level_search) and quality is None
    room = (
        None if max_bytes is None else max_bytes - (LEVEL_BYTES if search else 0)
    )  # a searched level fits too

    def fits_completed(idx_L: list[np.ndarray]) -> bool:
        return len(packed(idx_L, completed=True)) <= room

    def first_file(indices: list[np.ndarray]) -> FirstFile:
        """Effort 0's file of these indices: the largest whole-scale prefix that fits, or the budget filled."""
        prior = prior_of(net)
        # The prefixes packed and cut here share one run of the prior (`ContextPrior.reusing_rows`): same bytes.
        with contextlib.nullcontext() if prior is None else prior.reusing_rows():
            for top in range(keep, 0, -1):
                data = packed(indices[:top])
                if max_bytes is None or len(data) <= max_bytes:
                    break
            else:
                raise BudgetError(
                    f"cannot fit in {max_bytes} bytes: the smallest file (1 scale) takes {len(data)} bytes"
                )
            # Under a budget the context coder fills it to the token, and the decoder completes the rest (coder 4).
            completes = (
                max_bytes is not None
                and top < keep == len(cfg.schedule)
                and coder in ("auto", "context")
                and quality is None
                and prior is not None
            )
            first = FirstFile(indices, top, data, completes)
            if completes:
                from vatcodec.codec.completion import cut_to_fit

                first.idx_cut = cut_to_fit(net, indices, top, fits_completed)
                first.cut_data = None if first.idx_cut is None else packed(first.idx_cut, completed=True)
        return first

    def leveled(idx_L: list[np.ndarray], plain: bytes, completed: bool = False) -> bytes:
        """`plain` (the file of these indices), with the surface level that scores best when it beats the model's."""
        if not search:
            return plain
        if deadline is not None and time.monotonic() >= deadline:
            cut.append("surface level: not searched")
            return plain
        if progress is not None:
            progress(1.0, "choosing the surface level")
        level = choose_level(net, idx_L, unit, deadline=deadline, completed=completed)
        if deadline is not None and time.monotonic() >= deadline:
            cut.append("surface level: searched until the limit")
        out = packed(idx_L, level=level, completed=completed)
        return out if max_bytes is None or len(out) <= max_bytes else plain

    cut: list[str] = []  # what the time limit cut short, for the warning
    indices, mu_1KC = encoded(0)
    first = first_file(indices)
    if tries > 1:
        first, mu_1KC = best_try(
            net, unit, first, mu_1KC, encoded, first_file, tries, deadline, cut, progress
        )
    indices, top, data, completes = first.indices, first.top, first.data, first.completes
    idx_cut = first.idx_cut
    if effort == 0 and quality is None:
        return leveled(*first.stream(), completed=first.idx_cut is not None)

    samples = None

    def refined(n: int, until: float | None, what: str, share: float = 1.0):
        """The refinement of prefix n at this effort (`vatcodec.codec.effort.Result`), or None when there is none."""
        nonlocal samples
        if effort == 0:
            return None
        if until is not None and time.monotonic() >= until:
            cut.append(f"{what}: not started")
            return None
        from vatcodec.codec.effort import level_samples, refine

        if samples is None:
            samples = level_samples(unit, seed, net.cfg, effort)
        report = None if progress is None else (lambda f: progress(f, what))
        # A prefix must fit the budget too: the entropy coders' sizes depend on the indices.
        result = refine(
            net, samples, mu_1KC, n, effort, deadline=until, accept=fits, progress=report, share=share
        )
        if result.stopped_early:
            early = (
                ", early, to leave the surface-level search its share"
                if search and deadline is not None
                else ""
            )
            cut.append(f"{what}: stopped after {result.steps} steps and {result.evals} index trials{early}")
        return result

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
        from vatcodec.codec.quick_score import QuickScorer

        if progress is not None:
            progress(1.0, f"effort {effort}: choosing among {len(candidates)} files")
        score = QuickScorer(unit)  # the input's index is built once for all candidates
        scores = [score(net, idx_L) for idx_L, _ in candidates]
        return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -candidates[i][1]))][0]

    if quality is not None:
        out = encode_for_quality(
            lambda n, until: best_of([n], until), packed,
            lambda data: _fscore(data, net, unit, norm, quality_resolution), top, quality, deadline, progress,
        )  # fmt: skip
    else:
        # Refined indices code to more bytes than the encoder's (zstd/range), so a budget that the effort-0 file
        # nearly fills leaves the refinement no room. Then the next smaller prefix, which has room, is refined too.
        tight = max_bytes is not None and top > 1 and len(data) > TIGHT_BUDGET * max_bytes
        refine_until = refinement_deadline(start, limit) if search else deadline
        best = best_of([top, top - 1] if tight else [top], refine_until)
        completed = False
        if completes and (refine_until is None or time.monotonic() < refine_until):
            best, completed = best_completion(net, unit, best, idx_cut, fits_completed)
        elif completes:
            cut.append("completion: not compared")
        out = leveled(best, packed(best, completed=completed), completed=completed)
    if cut:
        warnings.warn(
            TimeLimitWarning(
                f"effort {effort} reached its {limit:g} s time limit ({'; '.join(cut)}) and kept the best tokens"
                " found; --time-limit 0 removes the limit"
            ),
            stacklevel=2,
        )
    return out
