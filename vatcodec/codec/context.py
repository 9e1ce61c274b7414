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

The same prior completes a stream cut short (coder 4, SPEC section 5.3): a file may stop inside a scale, carrying
only the tokens the prior was least sure of (`coding_order`), and a decoder fills every token the file lacks with
the prior's expected code vector, scale after scale (`ContextPrior.complete`). On 33 validation meshes a stream of 6
of vat-tp2's 7 scales decoded at F 0.522 alone and 0.571 completed (docs/benchmarks.md, "Completion").

This is coder 3 of the .vat format (format/SPEC.md section 5.2, `bitstream.pack(prior=...)`); what it measured:
docs/benchmarks.md, "Context coding".
"""

from __future__ import annotations

import contextlib
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


def coding_order(freq_LK: np.ndarray) -> np.ndarray:
    """The order in which a cut scale's tokens are coded: least confident row (smallest largest frequency) first.

    Integer keys only (ties by position), so that a decoder with the same rows finds the same order.
    """
    return np.lexsort((np.arange(len(freq_LK)), freq_LK.max(axis=1)))


def cut_rows(freq_LK: np.ndarray, k: int) -> np.ndarray:
    """The rows of a cut scale's first k tokens, in coding order: what codes and decodes them."""
    return freq_LK[coding_order(freq_LK)[:k]]


def expected_codes(freq_LK: np.ndarray, book_VC: np.ndarray) -> np.ndarray:
    """The code vector each row expects (L, C): the codebook averaged under the row's probabilities."""
    return (freq_LK.astype(np.float64) / TOTAL) @ book_VC


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


def _key(idx_L: list[np.ndarray]) -> bytes:
    return b"".join(np.asarray(a, dtype="<i4").tobytes() + b"|" for a in idx_L)


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
        self._memo: dict[tuple, list[np.ndarray] | bytes] | None = None  # kept inside `reusing_rows`

    @contextlib.contextmanager
    def reusing_rows(self):
        """Within this block, `rows` of a prefix already asked for are not computed again (an encoder that packs
        one stream cut several ways). Blocks nest: an inner one shares the outer one's rows."""
        if self._memo is not None:
            yield self
            return
        self._memo = {}
        try:
            yield self
        finally:
            self._memo = None

    def _run(self, num_scales: int, pick) -> None:
        """Runs the prior over `num_scales` scales; `pick(si, rows)` returns what scale si holds.

        That is its indices (L,), or code vectors (L, C) where the stream has no indices (completion).
        """

        def step(si: int, logits_1nV: torch.Tensor) -> torch.Tensor:
            held = np.asarray(pick(si, freq_rows(logits_1nV[0].numpy())))
            if si + 1 == num_scales:
                raise _Done
            dtype = torch.float64 if held.dtype.kind == "f" else torch.int64
            return torch.as_tensor(held, dtype=dtype)[None]

        with torch.no_grad(), one_thread():  # one thread: the same float64 sums on every run
            try:
                self.gen.sample(self.gen.null_cond.reshape(1, -1), pick=step)
            except _Done:
                pass

    def rows(self, idx_L: list[np.ndarray]) -> list[np.ndarray]:
        """The frequency rows of every scale of a prefix, given all but its last scale (one run of the prior)."""
        self._check(len(idx_L), [len(a) for a in idx_L[:-1]])
        key = ("rows", _key(idx_L[:-1]), len(idx_L))
        if self._memo is not None and key in self._memo:
            return self._memo[key]
        rows: list[np.ndarray] = []

        def pick(si: int, freq_LK: np.ndarray) -> np.ndarray:
            rows.append(freq_LK)
            return np.asarray(idx_L[si], dtype=np.int64) if si + 1 < len(idx_L) else np.zeros(0, np.int64)

        self._run(len(idx_L), pick)
        if self._memo is not None:  # one run holds the rows of every shorter prefix of the same indices too
            self._memo[key] = rows
            for k in range(1, len(idx_L)):
                self._memo.setdefault(("rows", _key(idx_L[: k - 1]), k), rows[:k])
        return rows

    def encode(self, idx_L: list[np.ndarray], cut: bool = False) -> list[bytes]:
        """One coded segment per scale of a prefix of the scales.

        With `cut`, the last array holds the first tokens of its scale in `coding_order` (coder 4), else every
        token of it in position order.
        """
        self._check(len(idx_L), [len(a) for a in idx_L], cut=cut)
        rows = self.rows(idx_L)
        segments = [self._whole(idx_L[: si + 1], rows[si]) for si in range(len(idx_L) - 1)]
        last_LK = cut_rows(rows[-1], len(idx_L[-1])) if cut else rows[-1]
        return segments + [encode_rows(idx_L[-1], last_LK)]

    def _whole(self, idx_L: list[np.ndarray], freq_LK: np.ndarray) -> bytes:
        """The segment of the last scale of `idx_L`, whole, with its rows; kept within `reusing_rows`."""
        if self._memo is None:
            return encode_rows(idx_L[-1], freq_LK)
        key = ("segment", _key(idx_L))
        if key not in self._memo:
            self._memo[key] = encode_rows(idx_L[-1], freq_LK)
        return self._memo[key]

    def decode(self, segments: list[bytes], cut: int | None = None) -> list[np.ndarray]:
        """The indices of the first len(segments) scales; with `cut`, the last holds that many, in coding order.

        Raises:
            BitstreamError: a segment is corrupt, or there are more segments than scales.
        """
        self._check(len(segments), self.counts[: len(segments)])
        out: list[np.ndarray] = []
        if cut is not None and self._memo is not None:
            # A cut file read to be decoded: its completion comes from the same run of the prior (`complete`).
            def held(si: int, freq_LK: np.ndarray, order: np.ndarray | None) -> np.ndarray:
                out.append(decode_rows(segments[si], freq_LK if order is None else cut_rows(freq_LK, cut)))
                return out[-1]

            codes = self._completion(len(segments), True, held)
            self._memo[("complete", _key(out))] = codes
            return out

        def pick(si: int, freq_LK: np.ndarray) -> np.ndarray:
            if cut is not None and si + 1 == len(segments):
                freq_LK = cut_rows(freq_LK, cut)
            out.append(decode_rows(segments[si], freq_LK))
            return out[-1]

        self._run(len(segments), pick)
        return out

    def complete(self, idx_L: list[np.ndarray], cut: bool = False) -> list[np.ndarray]:
        """Code vectors (L_s, C) of every scale: the stream's tokens, and the prior's expected code where it has none.

        Each missing scale is predicted from the completed scales before it, as the prior would sample it.

        Args:
            idx_L: indices of a prefix of the scales; with `cut`, the last array holds the first tokens of its
                scale in `coding_order` (a coder-4 file's).
        """
        self._check(len(idx_L), [len(a) for a in idx_L], cut=cut)
        if cut and self._memo is not None and ("complete", _key(idx_L)) in self._memo:
            return self._memo[("complete", _key(idx_L))]  # read from the file in this very run (`decode`)
        return self._completion(
            len(idx_L), cut, lambda si, freq_LK, order: np.asarray(idx_L[si], dtype=np.int64)
        )

    def _completion(self, n: int, cut: bool, held) -> list[np.ndarray]:
        """One run of the prior over every scale: the first n hold `held(si, rows, order)`, the rest expected codes.

        `held` returns a scale's indices; for a cut last scale (`cut`) it gets the coding order too, and the
        indices it returns fill that order's first positions, the prior's expected codes the others.
        """
        book_VC = self.gen.vq.codebook.weight.detach().numpy()
        codes: list[np.ndarray] = []

        def pick(si: int, freq_LK: np.ndarray) -> np.ndarray:
            if si < n and not (cut and si + 1 == n):
                codes.append(book_VC[held(si, freq_LK, None)])
            else:
                codes.append(expected_codes(freq_LK, book_VC))
                if si < n:  # the cut scale: the tokens it holds, where the order puts them
                    order = coding_order(freq_LK)
                    idx = held(si, freq_LK, order)
                    codes[-1][order[: len(idx)]] = book_VC[idx]
            return codes[-1]

        self._run(len(self.counts), pick)
        return codes

    def _check(self, n: int, counts: list[int], cut: bool = False) -> None:
        """n scales whose leading arrays have these token counts; with `cut` the n-th may hold 1..its scale's."""
        head, want = list(counts), list(self.counts[:n])
        bad = not 1 <= n <= len(self.counts)
        if not bad and cut and len(head) == n:
            bad = not 1 <= head[-1] <= want[-1]
            head, want = head[:-1], want[:-1]
        if bad or head != want[: len(head)]:
            raise BitstreamError(
                f"token counts {list(counts)} are not a prefix of the prior's scales {self.counts}"
            )
