"""The per-file surface level: the encoder's search for the level that decodes best, and its share of a time limit."""

from __future__ import annotations

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
# (docs/tokenizer.md, "Session 13"). The search, once started, runs to its end.
LEVEL_SEARCH_SHARE = 0.2


def refinement_deadline(start: float, limit: float | None) -> float | None:
    """When the refinement stops if the level search follows it: (1 - LEVEL_SEARCH_SHARE) of the limit."""
    return None if limit is None else start + (1.0 - LEVEL_SEARCH_SHARE) * limit


def choose_level(net: VAT, idx_L: list[np.ndarray], mesh_unit, resolution: int | None = None) -> int:
    """The surface-level offset (in LEVEL_UNIT steps) whose decode has the best quick F-score against the mesh.

    The decoder's logits are calibrated on average, not per shape: thin parts of one shape surface at a lower
    level, a swollen shape at a higher one. Coarse candidates first (LEVEL_COARSE), then LEVEL_FINE around the
    best; ties go to the smaller offset, so 0 (no extension) wins unless another level scores higher.
    """
    from vatcodec.codec.effort import fscore_proxy

    resolution = resolution or LEVEL_RESOLUTION
    scores: dict[int, float] = {}

    def better(k: int) -> tuple[float, int]:
        if k not in scores:
            scores[k] = fscore_proxy(net, idx_L, mesh_unit, resolution, level=k * LEVEL_UNIT)
        return scores[k], -abs(k)

    best = max((0, *LEVEL_COARSE), key=better)
    return max((best, *(best + d for d in LEVEL_FINE)), key=better)
