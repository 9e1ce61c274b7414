"""Decoding a stream that stops short of the full schedule: the prior's completion of a context-coded file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from vatcodec.codec.models import device_of, prior_of
from vatcodec.errors import VatError
from vatcodec.threads import one_thread

if TYPE_CHECKING:
    from vatcodec.model.tokenizer import VAT, OccupancyField


def stream_field(net: VAT, idx_L: list, completed: bool = False, cut: bool = False) -> OccupancyField:
    """The occupancy field of a token stream, on one thread (so that it is the same for any thread count).

    Args:
        idx_L: indices of a prefix of the scales, one array per scale.
        completed: fill every token the stream lacks with the prior's expected code (`ContextPrior.complete`),
            and decode all scales at the full stream's surface level; a plain prefix decode otherwise.
        cut: with `completed`, the last array holds the first tokens of its scale in the prior's coding order
            (the last scale of a coder-4 file).
    """
    dev = device_of(net)
    with torch.inference_mode(), one_thread():
        if not completed:
            return net.decode([torch.as_tensor(np.asarray(a, dtype=np.int64))[None].to(dev) for a in idx_L])
        prior = prior_of(net)
        if prior is None:
            raise VatError("completing a stream needs the model's context prior, and this model has none")
        codes = prior.complete([np.asarray(a, dtype=np.int64) for a in idx_L], cut=cut)
        return net.decode_codes([torch.from_numpy(c_LC).float()[None].to(dev) for c_LC in codes])


def cut_to_fit(net: VAT, indices: list[np.ndarray], top: int, fits) -> list[np.ndarray] | None:
    """The longest cut stream that fits: whole scales, then the first tokens of the next in the prior's order.

    Args:
        indices: every scale's indices (position order).
        top: the most whole scales whose plain file fits; the cut tries top + 1 scales (the last one cut), then
            top (a completed file takes a byte or two more than a plain one).
        fits: `fits(idx_L)` says whether the completed file of a cut stream fits the budget.

    Returns:
        The cut stream (its last array in coding order, as `VatFile.indices` holds it), or None when not even one
        token of those scales fits.
    """
    with prior_of(
        net
    ).reusing_rows():  # one run of the prior per cut scale: every `fits` below reuses its rows
        for present in (top + 1, top):
            if not 1 <= present <= len(indices):
                continue
            last = in_coding_order(net, indices[:present])[-1]
            lo, hi = 0, len(last)  # the coded size grows with the tokens kept: bisect for the most that fit
            while lo < hi:
                k = (lo + hi + 1) // 2
                if fits([*indices[: present - 1], last[:k]]):
                    lo = k
                else:
                    hi = k - 1
            if lo:
                return [*indices[: present - 1], last[:lo]]
    return None


def in_coding_order(net: VAT, idx_L: list[np.ndarray]) -> list[np.ndarray]:
    """A whole-scale stream as a completed file holds it: its last scale in the prior's coding order."""
    from vatcodec.codec.context import coding_order

    order = coding_order(prior_of(net).rows(idx_L)[-1])
    return [*idx_L[:-1], np.asarray(idx_L[-1])[order]]
