"""Occupancy labels and their scores, in NumPy alone: the semi-continuous label, Accuracy, IoU, NSA and CS-IoU.

Kept free of trimesh, igl and torch, so that training runs on a machine that has only torch and NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LABEL_BAND = 1.0 / 128  # s of the semi-continuous label, paper §6.3.1


def semi_continuous_occupancy(sdf: np.ndarray, s: float = LABEL_BAND) -> np.ndarray:
    """Occupancy label of paper §6.3.1: 1 inside beyond s, 0 outside beyond s, linear between."""
    return np.clip(0.5 - 0.5 * np.asarray(sdf) / s, 0.0, 1.0)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensors, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def occupancy_metrics(
    pred_logits_or_probs,
    target_occ,
    query_sdf=None,
    near_band: float = 0.05,
    near_mask=None,
    from_logits: bool = True,
) -> dict[str, float]:
    """Occupancy accuracy, IoU and near-surface accuracy over a set of query points.

    Args:
        pred_logits_or_probs: Predictions (N,) as logits (occupied if > 0) or, with
            ``from_logits=False``, probabilities (occupied if > 0.5). Bool arrays are used as-is.
            NumPy arrays or torch tensors; any shape, flattened.
        target_occ: Ground-truth occupancy (N,), bool or {0, 1} (occupied if > 0.5).
        query_sdf: Signed (or unsigned) distance of each query to the GT surface (N,); points with
            |sdf| <= ``near_band`` form the near-surface set.
        near_band: Near-surface half-width (paper: 0.05).
        near_mask: Explicit near-surface mask (N,); overrides ``query_sdf``.
        from_logits: Whether non-bool predictions are logits (True) or probabilities.

    Returns:
        ``accuracy``, ``iou`` (1.0 when prediction and target are both empty) and
        ``near_surface_accuracy`` (NaN when no near-surface set is given or it is empty).
    """
    pred = _to_numpy(pred_logits_or_probs).reshape(-1)
    if pred.dtype == bool:
        pred_occ = pred
    else:
        pred_occ = pred > (0.0 if from_logits else 0.5)
    target = _to_numpy(target_occ).reshape(-1)
    target = target if target.dtype == bool else target > 0.5
    if pred_occ.shape != target.shape:
        raise ValueError(f"prediction has {pred_occ.size} values but target has {target.size}")
    if pred_occ.size == 0:
        raise ValueError("occupancy metrics need at least one query point")
    correct = pred_occ == target
    union = np.count_nonzero(pred_occ | target)
    iou = 1.0 if union == 0 else np.count_nonzero(pred_occ & target) / union

    if near_mask is not None:
        near = _to_numpy(near_mask).reshape(-1).astype(bool)
    elif query_sdf is not None:
        near = np.abs(_to_numpy(query_sdf).reshape(-1)) <= near_band
    else:
        near = None
    if near is not None and near.shape != correct.shape:
        raise ValueError(f"near-surface set has {near.size} values but target has {target.size}")
    near_acc = math.nan if near is None or not near.any() else float(correct[near].mean())
    return {"accuracy": float(correct.mean()), "iou": float(iou), "near_surface_accuracy": near_acc}


def cs_iou(ious_per_prefix: Sequence[float]) -> float:
    """Cross-scale IoU: the IoU of each scale prefix (tokens beyond scale s dropped), averaged.

    Args:
        ious_per_prefix: IoU obtained when decoding with scales 1..s, one entry per s.
    """
    values = np.asarray(list(ious_per_prefix), dtype=np.float64)
    if values.size == 0:
        raise ValueError("cs_iou needs at least one per-prefix IoU")
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError("per-prefix IoUs must lie in [0, 1]")
    return float(values.mean())
