"""The per-file surface level: the encoder's search for the level that decodes best, and its share of a time limit."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from vatcodec.codec.bitstream import LEVEL_UNIT

if TYPE_CHECKING:
    from vatcodec.model.tokenizer import VAT

# Surface-level search (`level_search`), in steps of LEVEL_UNIT logits from the model's level: the coarse
# candidates first, then the fine ones around the best of them. Measured on 33 validation meshes (docs/tokenizer.md).
LEVEL_COARSE = (-8, -4, 4, 8)
LEVEL_FINE = (-2, 2)
LEVEL_RESOLUTION = 128  # marching-cubes grid of the search's quick F-scores
# Under a time limit with the search on, the refinement stops at (1 - this) of the limit, so that a slow or busy
# machine still searches the level (+0.03 F at effort 2) instead of refining to the limit and skipping it
# (docs/tokenizer.md, "Session 13"). The search starts no candidate past the limit (session 14), so a file ends at
# most one quick decode after it.
LEVEL_SEARCH_SHARE = 0.2


def refinement_deadline(start: float, limit: float | None) -> float | None:
    """When the refinement stops if the level search follows it: (1 - LEVEL_SEARCH_SHARE) of the limit."""
    return None if limit is None else start + (1.0 - LEVEL_SEARCH_SHARE) * limit


def choose_level(
    net: VAT,
    idx_L: list[np.ndarray],
    mesh_unit,
    resolution: int | None = None,
    deadline: float | None = None,
    completed: bool = False,
) -> int:
    """The surface-level offset (in LEVEL_UNIT steps) whose decode has the best quick F-score against the mesh.

    The decoder's logits are calibrated on average, not per shape: thin parts of one shape surface at a lower
    level, a swollen shape at a higher one. Coarse candidates first (LEVEL_COARSE), then LEVEL_FINE around the
    best; ties go to the smaller offset, so 0 (no extension) wins unless another level scores higher. Past
    `deadline` (a `time.monotonic()` value) no further candidate starts: the best one scored so far wins. The
    stream is decoded once and the candidates share its field values (`QuickScorer.at_levels`; `completed`: the
    stream of a coder-4 file).
    """
    from vatcodec.codec.quick_score import QuickScorer

    score_at = QuickScorer(mesh_unit, resolution or LEVEL_RESOLUTION).at_levels(net, idx_L, completed)
    scores: dict[int, float] = {}

    def best_of(candidates: tuple[int, ...]) -> int:
        for k in candidates:
            if k in scores:
                continue
            if scores and deadline is not None and time.monotonic() >= deadline:
                break
            scores[k] = score_at(k * LEVEL_UNIT)
        return max((k for k in candidates if k in scores), key=lambda k: (scores[k], -abs(k)))

    best = best_of((0, *LEVEL_COARSE))
    return best_of((best, *(best + d for d in LEVEL_FINE)))
