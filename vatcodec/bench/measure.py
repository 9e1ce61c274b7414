"""Per-mesh measurements of the benchmark: our codec at scale prefixes or byte budgets, occupancy, baselines.

Every function returns plain-JSON rows. Surface metrics use the dense point-to-surface protocol of
`vatcodec.geometry.metrics` (F-score at tau = 0.01, Chamfer, normal consistency) in the REFERENCE mesh's unit-cube
frame, so our decodes and the baselines' are scored identically.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from vatcodec.geometry.metrics import decoded_surface_metrics

# Query points per mesh for the tokenizer's occupancy metrics (half uniform, half near the surface).
OCC_UNIFORM, OCC_NEAR = 20_000, 20_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _row(name: str, path: str, codec: str, rate: int, nbytes: int | None, metrics: dict, **extra) -> dict:
    size = os.path.getsize(path)
    return {
        "mesh": name,
        "codec": codec,
        "rate": rate,
        "bytes": nbytes,
        **metrics,
        "input_bytes": size,
        "ratio": size / nbytes if nbytes else None,
        **extra,
    }


def _decoded_row(
    name: str,
    path: str,
    codec: str,
    rate: int,
    data: bytes,
    model,
    resolution: int,
    ref_unit,
    norm,
    encode_s: float,
    **extra,
) -> dict:
    """Decode `data` with `model` and score it: one row; an empty decode is a measured failure, not a crash."""
    import torch

    from vatcodec.codec import decode

    t = time.perf_counter()
    try:
        mesh, error = decode(data, model=model, resolution=resolution), None
    except Exception as exc:  # noqa: BLE001
        mesh, error = None, str(exc)
    decode_s = time.perf_counter() - t
    return _row(name, path, codec, rate, len(data), decoded_surface_metrics(mesh, ref_unit, norm),
                encode_s=encode_s, decode_s=decode_s, faces=0 if mesh is None else len(mesh.faces), **extra,
                error=error, peak_rss_mb=_peak_rss_mb(), threads=torch.get_num_threads())  # fmt: skip


def measure_vat(path: str, name: str, net, codec: str, prefixes: list[int], resolution: int) -> list[dict]:
    """Rows of our codec for one mesh: one per scale prefix (bytes, surface metrics, times, peak memory).

    Encoding runs once; each prefix is the same file cut to its first n scales, which is exactly what
    `vatcodec encode --scales n` writes.
    """
    from vatcodec.codec import encode, recode
    from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

    ref = load_mesh(path)
    ref_unit, norm = normalize_mesh(ref)
    rows = []
    t = time.perf_counter()
    full = encode(ref, model=net)
    t_full = time.perf_counter() - t
    for n in prefixes:
        t = time.perf_counter()
        data = recode(full, model=net, scales=n)  # the same tokens, cut: what `encode --scales n` writes
        t_enc = t_full + time.perf_counter() - t
        rows.append(
            _decoded_row(name, path, codec, n, data, net, resolution, ref_unit, norm, t_enc,
                         tokens=int(sum(net.cfg.schedule[:n])))
        )  # fmt: skip
    return rows


def writers_of(net, options: dict) -> list[tuple[str, object]]:
    """(label, model) of every model a budget-mode encode may write with: the codec's own ("") and `also_models`."""
    from vatcodec.codec import get_model

    return [("", net)] + [(Path(m).stem, get_model(m)) for m in options.get("also_models", ())]


def encode_at_budget(ref, net, budget: int, options: dict, writers: list) -> tuple[bytes, str, object]:
    """`encode(ref, max_bytes=budget, **options)` and the (label, model) of `writers` that the file names.

    Raises:
        BudgetError: the budget is below the smallest file the model can write.
    """
    from vatcodec.codec import encode
    from vatcodec.codec.bitstream import header_info
    from vatcodec.codec.models import file_model_id
    from vatcodec.errors import VatError

    data = encode(ref, model=net, max_bytes=budget, **options)
    info = header_info(data)
    for label, writer in writers:
        try:  # a model without a prior has no context-coded id: not the writer of a context file
            if file_model_id(writer, info["coder"]).hex() == info["model_id"]:
                return data, label, writer
        except VatError:
            continue
    raise VatError(f"the encoded file names model {info['model_id']}, which none of the given models wrote")


def measure_vat_budgets(
    path: str, name: str, net, codec: str, budgets: list[int], resolution: int, options: dict
) -> list[dict]:
    """Rows of our codec for one mesh at each byte budget: what `vatcodec encode --max-bytes B` writes with
    `options` (effort, level search, tries, other models), decoded by the model the file names.

    A budget below the smallest file the model can write counts as lost (F = 0, no bytes), as for the baselines.
    """

    from vatcodec.codec.bitstream import header_info
    from vatcodec.errors import BudgetError
    from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

    ref = load_mesh(path)
    ref_unit, norm = normalize_mesh(ref)
    writers = writers_of(net, options)
    rows = []
    for budget in budgets:
        t = time.perf_counter()
        try:
            data, label, writer = encode_at_budget(ref, net, budget, options, writers)
        except BudgetError as exc:  # below the smallest file: lost, as a baseline with nothing that fits
            rows.append(_row(name, path, codec, budget, None, decoded_surface_metrics(None, ref_unit, norm),
                             error=str(exc)))  # fmt: skip
            continue
        t_enc = time.perf_counter() - t
        rows.append(
            _decoded_row(name, path, codec, budget, data, writer, resolution, ref_unit, norm, t_enc,
                         scales=header_info(data)["scales_present"], also_model=label)  # "": the codec's own model
        )  # fmt: skip
    return rows


def measure_occupancy(path: str, name: str, net, codec: str, prefixes: list[int], seed: int = 0) -> dict:
    """The paper's tokenizer metrics for one mesh: Accuracy, IoU, Near-Surface Accuracy per prefix, CS-IoU.

    Labels come from the training oracle (`vatcodec.geometry.occupancy`) on uniform and near-surface queries.
    """
    import torch

    from vatcodec.codec import encode
    from vatcodec.codec.bitstream import unpack
    from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh
    from vatcodec.geometry.metrics import cs_iou, occupancy_metrics
    from vatcodec.geometry.sampling import make_sample

    ref_unit, _ = normalize_mesh(load_mesh(path))
    sample = make_sample(ref_unit, 16, OCC_UNIFORM, OCC_NEAR, seed)
    queries_1M3 = torch.from_numpy(sample["query_points"])[None]
    indices = unpack(encode(ref_unit, model=net, coder="raw")).indices  # raw: unpacking needs no tables
    per_prefix = []
    with torch.inference_mode():
        for n in prefixes:
            field = net.decode([torch.from_numpy(np.asarray(a, dtype=np.int64))[None] for a in indices[:n]])
            per_prefix.append(
                occupancy_metrics(field(queries_1M3)[0], sample["query_occ"], sample["query_sdf"])
            )
    last = per_prefix[-1]
    return {
        "mesh": name,
        "codec": codec,
        "prefixes": prefixes,
        "accuracy": last["accuracy"],
        "iou": last["iou"],
        "near_surface_accuracy": last["near_surface_accuracy"],
        "prefix_iou": [m["iou"] for m in per_prefix],
        "cs_iou": cs_iou([m["iou"] for m in per_prefix]),
    }


def measure_baseline(path: str, name: str, codec: str, budgets: list[int]) -> list[dict]:
    """Rows of one classical baseline ("draco" or "voxel") for one mesh, one per byte budget."""
    from vatcodec.baselines import BASELINES
    from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

    ref = load_mesh(path)
    ref_unit, norm = normalize_mesh(ref)
    t = time.perf_counter()
    baseline = BASELINES[codec](ref)
    rows = []
    for budget in budgets:
        result = baseline.at_budget(budget)
        if result is None:  # nothing fits the budget: a lost shape
            nbytes, metrics, params = None, decoded_surface_metrics(None, ref_unit, norm), None
        else:
            # Draco's search already scored its pick with the same protocol; the voxel decode is scored here.
            metrics = result.metrics or decoded_surface_metrics(result.mesh, ref_unit, norm)
            metrics = {k: float(metrics[k]) for k in ("fscore", "chamfer", "normal_consistency")}
            nbytes, params = result.nbytes, json.dumps(result.params, sort_keys=True)
        rows.append(_row(name, path, codec, budget, nbytes, metrics, params=params))
    for r in rows:
        r["search_s"] = (time.perf_counter() - t) / len(rows)
    return rows
