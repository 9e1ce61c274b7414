"""Encoding to a quality target: the bisection over scale prefixes for the smallest file that reaches an F-score."""

from __future__ import annotations

import math
import time
import warnings

from vatcodec.errors import QualityWarning


def encode_for_quality(indices_for, packed, measure, top: int, quality: float, deadline, progress) -> bytes:
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
