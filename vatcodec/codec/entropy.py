"""Entropy coding of token indices (.vat coder 2, "range"): integer frequency tables per scale, range coding.

A model's tables are integers, `freq_SK[s, k]` >= 1 with every row summing to `TOTAL` = 2**24, stored in its
checkpoint. Each present scale is range-coded on its own with its row of the table, so any prefix of the scales
decodes; format/SPEC.md section 5.1 specifies the coded payload. No torch import: `vatcodec info` reads these files.
"""

from __future__ import annotations

import hashlib

import constriction
import numpy as np

from vatcodec.codec.byteio import MODEL_ID_BYTES, Reader, encode_varint
from vatcodec.errors import BitstreamError

PRECISION = 24  # bits of the probabilities of constriction's categorical model (32-bit words, 64-bit state)
TOTAL = 1 << PRECISION
MAX_SEGMENT = (1 << 21) - 1  # a segment length is a container varint: at most 3 bytes
_ALPHA_DENOM = 1 << 10  # smoothing pseudo-counts are multiples of 1/1024, so building a table is exact
_TABLES_DOMAIN = b"vatcodec entropy tables v1"


# --- tables -----------------------------------------------------------------------------------------------------


def build_table(counts_K: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Frequencies proportional to `counts + alpha`, quantized to sum exactly to TOTAL with every entry >= 1.

    Exact integer arithmetic (largest remainders, ties to the lower index), so the same counts give the same
    table on every machine. `alpha` is rounded to a multiple of 1/1024 and must be > 0 for a non-empty count.
    """
    counts_K = np.asarray(counts_K)
    if counts_K.ndim != 1 or not 1 <= len(counts_K) < TOTAL // 2 or counts_K.min() < 0:
        raise ValueError("counts must be a non-empty 1-D array of non-negative integers")
    a = round(alpha * _ALPHA_DENOM)
    if a < 0 or (a == 0 and counts_K.sum() == 0):
        raise ValueError(f"alpha must be positive, got {alpha}")
    weights = [int(c) * _ALPHA_DENOM + a for c in counts_K]  # Python ints: no overflow
    free, total = TOTAL - len(weights), sum(weights)
    shares = [divmod(w * free, total) for w in weights]
    freq = [1 + q for q, _ in shares]
    # Hand out the rounding remainder one unit at a time to the largest fractional parts.
    order = sorted(range(len(shares)), key=lambda i: (-shares[i][1], i))
    for i in order[: TOTAL - sum(freq)]:
        freq[i] += 1
    return np.array(freq, dtype=np.int64)


def build_tables(counts_SK: np.ndarray, alphas) -> np.ndarray:
    """One `build_table` row per scale; `alphas` is one pseudo-count per scale (or one for all)."""
    counts_SK = np.asarray(counts_SK)
    alphas = np.broadcast_to(np.asarray(alphas, dtype=np.float64), (counts_SK.shape[0],))
    return np.stack([build_table(c, float(a)) for c, a in zip(counts_SK, alphas, strict=True)])


def check_tables(freq_SK, num_scales: int, codebook_size: int) -> np.ndarray:
    """Validate a model's tables against a schedule and codebook; returns them as int64.

    Raises:
        BitstreamError: wrong shape, an entry < 1, or a row that does not sum to TOTAL.
    """
    arr = np.asarray(freq_SK)
    if arr.shape != (num_scales, codebook_size) or arr.dtype.kind not in "iu":
        raise BitstreamError(
            f"entropy tables must be an integer array of shape ({num_scales}, {codebook_size}),"
            f" got {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.int64)
    if arr.min() < 1 or np.any(arr.sum(axis=1) != TOTAL):
        raise BitstreamError(f"entropy tables need every frequency >= 1 and every row summing to {TOTAL}")
    return arr


def tables_id(weights_id: bytes, freq_SK: np.ndarray) -> bytes:
    """The model id of range-coded files: a hash of the decoder's id and of the tables (little-endian u32)."""
    h = hashlib.sha256(_TABLES_DOMAIN)
    h.update(bytes(weights_id))
    h.update(np.asarray(freq_SK.shape, dtype="<u4").tobytes())
    h.update(np.ascontiguousarray(freq_SK, dtype="<u4").tobytes())
    return h.digest()[:MODEL_ID_BYTES]


def code_length_bits(counts_K: np.ndarray, freq_K: np.ndarray) -> float:
    """Ideal size in bits of symbols with histogram `counts_K` under a table (to compare smoothings)."""
    counts_K, freq_K = np.asarray(counts_K, dtype=np.float64), np.asarray(freq_K, dtype=np.float64)
    return float(-(counts_K * np.log2(freq_K / TOTAL)).sum())


# --- one scale ----------------------------------------------------------------------------------------------------


def _model(freq_K: np.ndarray):
    # Why this is exact: with perfect=False constriction quantizes float probabilities p_k with
    # left_cdf[k] = floor(cumsum(p)[k] * (2**24 - K) / sum(p)) + k. Passing p_k = freq_k - 1 (integers, their
    # sum 2**24 - K) makes the scale factor exactly 1.0 and every partial sum an integer below 2**24, so every
    # float operation is exact in f64 and left_cdf[k] = freq_0 + ... + freq_(k-1): the coder's model is our
    # integer table, bit for bit, on any IEEE-754 machine. (perfect=True would run an optimizer instead.)
    return constriction.stream.model.Categorical((freq_K - 1).astype(np.float64), perfect=False)


def decode_words(segment: bytes, count: int, model, probs_LK: np.ndarray | None = None) -> np.ndarray | None:
    """Range-decode `count` symbols; bytes past the segment read as zero. None if the coder rejects the data.

    `probs_LK` gives each symbol its own row (a model made without probabilities); None uses `model`'s own.
    """
    padded = segment + bytes(-len(segment) % 4)
    words = np.frombuffer(padded, dtype=">u4").astype(np.uint32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        out = decoder.decode(model, count) if probs_LK is None else decoder.decode(model, probs_LK)
        return out.astype(np.int64)
    except Exception:  # constriction reports invalid data as AssertionError; any failure means corrupt input
        return None


def shortest_bytes(words: np.ndarray, decodes_back) -> bytes:
    """The shortest byte string that `decodes_back(candidate) -> bool` accepts, from a sealed range coder output.

    constriction seals its output with whole 32-bit words. The decoder reads missing bytes as zero, and the
    strings that decode to the symbols are the numbers in one interval, so for each length n only two candidates
    can work: the first n bytes of the sealed output, and that plus one. Valid lengths are upward closed
    (appending a zero byte keeps the value), so trimming stops at the first length where neither decodes.
    """
    sealed = words.astype(">u4").tobytes()
    best = sealed
    for n in range(len(sealed) - 1, -1, -1):
        head = int.from_bytes(sealed[:n], "big")
        fits = [c.to_bytes(n, "big") for c in (head, head + 1) if c < 1 << (8 * n)]
        found = next((c for c in fits if decodes_back(c)), None)
        if found is None:
            break
        best = found
    return best


def encode_scale(idx_L: np.ndarray, freq_K: np.ndarray) -> bytes:
    """Range-code one scale's indices with its table row; the shortest byte string that decodes back."""
    idx_L = np.asarray(idx_L, dtype=np.int64)
    if len(freq_K) == 1:
        return b""  # a one-entry codebook: every index is 0 and costs nothing
    model = _model(freq_K)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(idx_L.astype(np.int32), model)
    return shortest_bytes(
        encoder.get_compressed(), lambda c: np.array_equal(decode_words(c, len(idx_L), model), idx_L)
    )


def decode_scale(segment: bytes, count: int, freq_K: np.ndarray) -> np.ndarray:
    """Inverse of `encode_scale`: `count` indices from one scale's coded bytes.

    Raises:
        BitstreamError: the range decoder meets data no encoder produces (SPEC 5.1), or a one-entry codebook
            has a non-empty segment.
    """
    if len(freq_K) == 1:
        if segment:
            raise BitstreamError(f"a one-entry codebook codes nothing, but a scale has {len(segment)} bytes")
        return np.zeros(count, dtype=np.int64)
    out = decode_words(bytes(segment), count, _model(freq_K))
    if out is None:
        raise BitstreamError("corrupt range-coded payload: the range decoder met bytes no encoder writes")
    return out


# --- the payload of coder 2 -----------------------------------------------------------------------------------------


def pack_payload(arrays: list[np.ndarray], freq_SK: np.ndarray) -> bytes:
    """Coded scales in order, each but the last preceded by its byte length as a varint (SPEC 5.1).

    Raises:
        BitstreamError: a coded scale exceeds the 3-byte varint limit (only for adversarial, huge schedules).
    """
    return frame_segments([encode_scale(a, freq_SK[s]) for s, a in enumerate(arrays)])


def frame_segments(segments: list[bytes]) -> bytes:
    """Coded scales in order, each but the last preceded by its byte length as a varint (SPEC 5.1; coder 3 too).

    Raises:
        BitstreamError: a coded scale exceeds the 3-byte varint limit (only for adversarial, huge schedules).
    """
    out = bytearray()
    for s, seg in enumerate(segments):
        if len(seg) > MAX_SEGMENT:
            raise BitstreamError(f"scale {s} codes to {len(seg)} bytes, more than {MAX_SEGMENT}")
        if s < len(segments) - 1:  # the last runs to the end of the payload: its length is implied
            out += encode_varint(len(seg))
        out += seg
    return bytes(out)


def split_payload(payload: bytes, present: int, what: str = "range-coded") -> list[bytes]:
    """The coded bytes of each present scale; checks every length against the bytes there are.

    Raises:
        BitstreamError: a length varint is malformed or runs past the payload.
    """
    r = Reader(payload, len(payload))
    segments = []
    for s in range(present - 1):
        n = r.varint(f"coded length of scale {s}", 0, MAX_SEGMENT)
        segments.append(r.take(n, f"{what} scale {s}"))
    segments.append(payload[r.pos :])
    return segments


def decode_payload(segments: list[bytes], counts: list[int], freq_SK: np.ndarray) -> list[np.ndarray]:
    """Indices per scale from `split_payload`'s segments, `counts[s]` tokens each (checked tables)."""
    return [decode_scale(seg, n, freq_SK[s]) for s, (seg, n) in enumerate(zip(segments, counts, strict=True))]
