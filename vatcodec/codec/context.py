"""Context coding of token indices: each scale range-coded with per-token rows that a next-scale prior predicts.

The range coder (coder 2, `vatcodec.codec.entropy`) gives every token of a scale the same row of a frequency
table: about 10 bits a token for vat-tp2. A next-scale autoregressive prior (the generator of `training.generator`,
run with its null condition) predicts each scale's tokens from the scales before it, as a decoder that holds those
scales can too, and measured 5.6 bits a token on the 33 validation meshes (`benchmarks/context_rate.py`).

A decoder must rebuild every row bit for bit, so floating point ends before the rows: the prior runs in float64 on
one thread, its logits are rounded to 1/16 of a bit, and the rows come from those integers through an integer
table of 2^(-j/16) (`freq_rows`). Two machines disagree only where a logit lies within float64 rounding error of a
rounding boundary (about 1e-13 of a step per logit). Any prefix of the scales decodes, as with coder 2: scale s
needs only scales 1..s-1.

This is coder 3 of the .vat format (format/SPEC.md section 5.2, `bitstream.pack(prior=...)`); what it measured:
docs/benchmarks.md, "Context coding".
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch

from vatcodec.codec.entropy import TOTAL, decode_words, shortest_bytes
from vatcodec.errors import BitstreamError
from vatcodec.threads import one_thread

STEPS = 16  # logits are rounded to 1/STEPS of a bit (log2 units) before they become frequencies
MAX_DROP = 20 * STEPS  # symbols more than 2^-20 below the most likely one share the floor weight
# round(2^30 * 2^(-j/16)) for j = 0..15, written out so that no libm takes part in a row
_BASE_16 = np.array(
    [1073741824, 1028218693, 984625594, 942880699, 902905651, 864625413, 827968132, 792865000,
     759250125, 727060411, 696235434, 666717336, 638450708, 611382493, 585461881, 560640218],
    dtype=np.int64,
)  # fmt: skip
_FAMILY = constriction.stream.model.Categorical(perfect=False)  # rows are given per symbol


def freq_rows(logits_LK: np.ndarray) -> np.ndarray:
    """Integer frequency rows (L, K), each >= 1 and summing to TOTAL = 2^24, from logits (natural units).

    Weights are 2^(-d/16) in fixed point, d the rounded distance in 1/16 bit below the row's best logit; the
    rounding left over by the integer division goes to the best symbol.

    Raises:
        BitstreamError: a logit is not finite (a broken prior).
    """
    logits_LK = np.asarray(logits_LK, dtype=np.float64)
    if not np.isfinite(logits_LK).all():
        raise BitstreamError("the context model produced a non-finite logit")
    L, K = logits_LK.shape
    q_LK = np.floor(logits_LK * (STEPS / math.log(2)) + 0.5).astype(np.int64)
    d_LK = np.minimum(q_LK.max(axis=1, keepdims=True) - q_LK, MAX_DROP)
    w_LK = _BASE_16[d_LK % STEPS] >> (d_LK // STEPS)  # <= 2^30, so w * TOTAL fits in int64
    total = (
        TOTAL - K
    )  # constriction's scale: the rows minus one each sum to exactly this (see entropy._model)
    f_LK = (w_LK * total) // w_LK.sum(axis=1, keepdims=True)
    f_LK[np.arange(L), d_LK.argmin(axis=1)] += total - f_LK.sum(axis=1)
    return f_LK + 1


def _probs(freq_LK: np.ndarray) -> np.ndarray:
    # freq - 1 per row sums to TOTAL - K: constriction's quantization is then the identity, exactly (entropy._model).
    return (freq_LK - 1).astype(np.float64)


def encode_rows(idx_L: np.ndarray, freq_LK: np.ndarray) -> bytes:
    """Range-code indices, each with its own frequency row; the shortest byte string that decodes back."""
    idx_L = np.asarray(idx_L, dtype=np.int64)
    probs_LK = _probs(freq_LK)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(idx_L.astype(np.int32), _FAMILY, probs_LK)
    return shortest_bytes(
        encoder.get_compressed(),
        lambda c: np.array_equal(decode_words(c, len(idx_L), _FAMILY, probs_LK), idx_L),
    )


def decode_rows(segment: bytes, freq_LK: np.ndarray) -> np.ndarray:
    """Inverse of `encode_rows`.

    Raises:
        BitstreamError: the range decoder meets bytes no encoder writes.
    """
    out = decode_words(bytes(segment), len(freq_LK), _FAMILY, _probs(freq_LK))
    if out is None:
        raise BitstreamError("corrupt context-coded payload: the range decoder met bytes no encoder writes")
    return out


class _Done(Exception):
    """Raised from the prior's scale loop once the last scale to code is done."""


class ContextPrior:
    """A next-scale generator's null-condition predictions as the probability model of context coding.

    Args:
        generator: a `NextScaleGenerator` for the tokenizer whose indices are coded; it is moved to float64.
    """

    def __init__(self, generator):
        from vatcodec.generation.checkpoint import generator_id

        # A loaded checkpoint's id, else the id its weights would have as saved now (models built in memory).
        self.generator_id = getattr(generator, "generator_id", "") or generator_id(
            generator.cfg, generator.state_dict()
        )
        self.gen = generator.double().eval()
        self.counts = list(generator.counts)

    def _run(self, num_scales: int, pick) -> None:
        def step(si: int, logits_1nV: torch.Tensor) -> torch.Tensor:
            idx = pick(si, freq_rows(logits_1nV[0].numpy()))
            if si + 1 == num_scales:
                raise _Done
            return torch.as_tensor(idx, dtype=torch.int64)[None]

        with torch.no_grad(), one_thread():  # one thread: the same float64 sums on every run
            try:
                self.gen.sample(self.gen.null_cond.reshape(1, -1), pick=step)
            except _Done:
                pass

    def encode(self, idx_L: list[np.ndarray]) -> list[bytes]:
        """One coded segment per scale of a prefix of the scales."""
        self._check(len(idx_L), [len(a) for a in idx_L])
        segments: list[bytes] = []

        def pick(si: int, freq_LK: np.ndarray) -> np.ndarray:
            segments.append(encode_rows(idx_L[si], freq_LK))
            return np.asarray(idx_L[si], dtype=np.int64)

        self._run(len(idx_L), pick)
        return segments

    def decode(self, segments: list[bytes]) -> list[np.ndarray]:
        """The indices of the first len(segments) scales.

        Raises:
            BitstreamError: a segment is corrupt, or there are more segments than scales.
        """
        self._check(len(segments), self.counts[: len(segments)])
        out: list[np.ndarray] = []

        def pick(si: int, freq_LK: np.ndarray) -> np.ndarray:
            out.append(decode_rows(segments[si], freq_LK))
            return out[-1]

        self._run(len(segments), pick)
        return out

    def _check(self, n: int, counts: list[int]) -> None:
        if not 1 <= n <= len(self.counts) or counts != self.counts[:n]:
            raise BitstreamError(
                f"token counts {counts} are not a prefix of the prior's scales {self.counts}"
            )
