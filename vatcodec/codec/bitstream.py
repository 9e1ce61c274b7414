"""The .vat container, format v1: pack/unpack multi-scale token streams (see format/SPEC.md).

This module is the normative reference reader/writer. It deliberately depends only on the standard
library, numpy and zstandard (no torch), so tools can inspect files without the neural codec. The
range coder's payload (coder 2) lives in `vatcodec.codec.entropy`, imported only for such files; the context
coder's (coder 3) needs the model's prior, a network, which the caller passes in (`vatcodec.codec.context`).
"""

from __future__ import annotations

import math
import operator
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import zstandard

from vatcodec.codec.byteio import MAX_VARINT_BYTES, MODEL_ID_BYTES, Reader, encode_varint  # noqa: F401 (re-exported)
from vatcodec.errors import BitstreamError

FORMAT_MAJOR = 1
FORMAT_MINOR = 4  # what this reader implements; a writer declares the lowest minor its file needs
MAGIC = b"VAT"
CODERS = {"raw": 0, "zstd": 1, "range": 2, "context": 3}
CODER_NAMES = {v: k for k, v in CODERS.items()}
# the format minor version that registered each coder
CODER_MINOR = {"raw": 0, "zstd": 0, "range": 1, "context": 3}
CUT_CODER = 4  # coder 3 with a cut last scale and completion (VatFile.completed; SPEC 5.3)
CUT_MINOR = 4  # the format minor version that registered it
CHECK_BYTES = 2  # coder 3: low 16 bits of the CRC-32 of the indices, so a prior computed otherwise is caught
EXT_FSCORE = 1  # extension tag: measured F-score, float32 little-endian
EXT_LEVEL = 2  # extension tag: surface-level offset for the file's full stream, int8 in 1/16 logit (minor 2)
EXT_MINOR = {EXT_FSCORE: 0, EXT_LEVEL: 2}  # the format minor version that registered each known tag
LEVEL_UNIT = 1.0 / 16.0  # logits per step of EXT_LEVEL

MAX_INDEX_BITS = 16
MAX_SCALES = 255
MAX_TOKENS = 1 << 20  # per file, over the full schedule; bounds every allocation a reader makes
MAX_EXT_BYTES = 1 << 16
_FIXED = struct.Struct("<3sBBB8sBB4f")  # magic .. scale: 32 bytes at fixed offsets
_CRC_BYTES = 4
_MIN_FILE = _FIXED.size + 5 + _CRC_BYTES  # 5 one-byte varints: cb, n, t0, present, n_ext

_zstd_compressor = zstandard.ZstdCompressor(
    level=19, write_checksum=False, write_content_size=True, write_dict_id=False
)


@dataclass(eq=False)
class VatFile:
    """Everything a .vat file carries; `pack` validates it, `unpack` returns it."""

    model_id: bytes
    codebook_size: int
    index_bits: int
    schedule: tuple[int, ...]
    indices: list[np.ndarray]
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    coder: str = "raw"
    flags: int = 0
    extensions: dict[int, bytes] = field(default_factory=dict)
    version: tuple[int, int] = (FORMAT_MAJOR, 0)
    # Context coder only (written as coder 4): the last scale may hold only its first tokens in the prior's coding
    # order, and a decoder completes every token the file lacks with the prior's expected code.
    completed: bool = False

    @property
    def num_scales(self) -> int:
        """Number of scales present in the file (a prefix of the schedule)."""
        return len(self.indices)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VatFile):
            return NotImplemented
        return (
            bytes(self.model_id) == bytes(other.model_id)
            and self.codebook_size == other.codebook_size
            and self.index_bits == other.index_bits
            and tuple(self.schedule) == tuple(other.schedule)
            and len(self.indices) == len(other.indices)
            and all(np.array_equal(a, b) for a, b in zip(self.indices, other.indices, strict=True))
            and tuple(self.center) == tuple(other.center)
            and self.scale == other.scale
            and self.coder == other.coder
            and self.flags == other.flags
            and {k: bytes(v) for k, v in self.extensions.items()}
            == {k: bytes(v) for k, v in other.extensions.items()}
            and tuple(self.version) == tuple(other.version)
            and self.completed == other.completed
        )

    __hash__ = None  # mutable container


def index_bits_for(codebook_size: int) -> int:
    """Smallest index width in bits (>= 1) that can hold every index of the codebook."""
    size = _as_int(codebook_size, "codebook size")
    if not 1 <= size <= 1 << MAX_INDEX_BITS:
        raise BitstreamError(f"codebook size {size} out of range 1..{1 << MAX_INDEX_BITS}")
    return max(1, (size - 1).bit_length())


# ---------------------------------------------------------------------------------------------
# Primitive encodings


def _pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Concatenate `bits`-wide codes MSB-first into bytes, zero-padding the last byte."""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint16)
    bits_NB = (values.astype(np.uint16)[:, None] >> shifts) & 1  # (N, bits)
    return np.packbits(bits_NB.astype(np.uint8).ravel()).tobytes()


def _unpack_bits(payload: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of `_pack_bits`; the caller has checked len(payload) == ceil(count*bits/8).

    Each index spans at most 3 bytes (bits <= 16, start bit <= 7), so gathering a 24-bit window
    per index decodes everything with O(count) memory, whatever the width.
    """
    pad = len(payload) * 8 - count * bits
    if payload[-1] & ((1 << pad) - 1):
        raise BitstreamError("non-zero padding bits after the last index")
    buf = np.frombuffer(payload + b"\0\0", dtype=np.uint8)  # 2 spare bytes: windows never overrun
    start = np.arange(count, dtype=np.int32) * bits  # first bit of each index
    first = start >> 3
    window = (buf[first].astype(np.int32) << 16) | (buf[first + 1].astype(np.int32) << 8) | buf[first + 2]
    values = (window >> (24 - bits - (start & 7))) & ((1 << bits) - 1)
    return values.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Writer


def _as_int(value, what: str) -> int:
    if isinstance(value, bool):
        raise BitstreamError(f"{what} must be an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise BitstreamError(f"{what} must be an integer, got {type(value).__name__}") from None


def _as_f32(value, what: str) -> float:
    try:
        with np.errstate(over="ignore"):
            out = np.float32(value)
    except (TypeError, ValueError):
        raise BitstreamError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise BitstreamError(f"{what} {value!r} is not a finite float32")
    return float(out)


def _check_indices(vat: VatFile, schedule: tuple[int, ...]) -> list[np.ndarray]:
    if not isinstance(vat.indices, (list, tuple)) or not 1 <= len(vat.indices) <= len(schedule):
        n = len(vat.indices) if isinstance(vat.indices, (list, tuple)) else "?"
        raise BitstreamError(f"need 1..{len(schedule)} present scales, got {n}")
    arrays = []
    for i, raw in enumerate(vat.indices):
        arr = np.asarray(raw)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise BitstreamError(f"scale {i}: indices must be a 1-D integer array")
        cut = vat.completed and i + 1 == len(vat.indices)  # a completed file's last scale may be cut
        if not (1 <= arr.shape[0] <= schedule[i] if cut else arr.shape[0] == schedule[i]):
            raise BitstreamError(f"scale {i}: {arr.shape[0]} indices, schedule says {schedule[i]}")
        if arr.min() < 0 or arr.max() >= vat.codebook_size:
            bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise BitstreamError(f"scale {i}: index {bad} outside codebook of size {vat.codebook_size}")
        arrays.append(arr.astype(np.int64, copy=False))  # mixed dtypes must not concat to float
    return arrays


def _check_extensions(extensions) -> list[tuple[int, bytes]]:
    if not isinstance(extensions, dict):
        raise BitstreamError("extensions must be a dict {tag: bytes}")
    items = []
    for tag, value in sorted(extensions.items()):
        tag = _as_int(tag, "extension tag")
        if not 1 <= tag <= 255:
            raise BitstreamError(f"extension tag {tag} out of range 1..255")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise BitstreamError(f"extension {tag} value must be bytes")
        value = bytes(value)
        if len(value) > MAX_EXT_BYTES:
            raise BitstreamError(f"extension {tag} is {len(value)} bytes, max {MAX_EXT_BYTES}")
        _check_known_extension(tag, value)
        items.append((tag, value))
    return items


def _check_known_extension(tag: int, value: bytes) -> None:
    if tag == EXT_FSCORE and len(value) != 4:
        raise BitstreamError(f"extension {tag} (F-score) must be 4 bytes, got {len(value)}")
    if tag == EXT_LEVEL and len(value) != 1:
        raise BitstreamError(f"extension {tag} (surface level) must be 1 byte, got {len(value)}")


def level_offset(vat: VatFile) -> float:
    """The file's surface-level offset in logits (EXT_LEVEL), 0.0 when it has none.

    It belongs to the file's full stream: a decode of fewer scales than the file holds ignores it.
    """
    value = vat.extensions.get(EXT_LEVEL)
    return 0.0 if value is None else struct.unpack("<b", bytes(value))[0] * LEVEL_UNIT


def level_extension(steps: int) -> dict[int, bytes]:
    """The EXT_LEVEL entry for an offset of `steps` x LEVEL_UNIT logits (none for 0)."""
    if not -128 <= steps <= 127:
        raise BitstreamError(f"surface-level offset must be -128..127 steps, got {steps}")
    return {} if steps == 0 else {EXT_LEVEL: struct.pack("<b", steps)}


def pack(vat: VatFile, tables=None, prior=None) -> bytes:
    """Serialize a VatFile to .vat bytes after validating every field.

    Args:
        vat: the file's fields.
        tables: the model's entropy tables `freq_SK` (scales x codebook), needed by the "range" coder only.
        prior: the model's `ContextPrior`, needed by the "context" coder only.

    Raises:
        BitstreamError: a field is out of range or inconsistent with another, "range" without tables, or
            "context" without a prior.
    """
    major, minor = (_as_int(v, "version") for v in vat.version)
    if major != FORMAT_MAJOR or not 0 <= minor <= 255:
        raise BitstreamError(f"cannot write version {major}.{minor} (writer is major 1)")
    model_id = vat.model_id
    if not isinstance(model_id, (bytes, bytearray)) or len(model_id) != MODEL_ID_BYTES:
        raise BitstreamError(f"model id must be {MODEL_ID_BYTES} bytes")
    flags = _as_int(vat.flags, "flags")
    if not 0 <= flags <= 255:
        raise BitstreamError(f"flags {flags} out of range 0..255")
    if vat.coder not in CODERS:
        raise BitstreamError(f"unknown coder {vat.coder!r} (known: {', '.join(CODERS)})")
    if vat.completed and vat.coder != "context":
        raise BitstreamError(f"only the context coder completes a stream, not {vat.coder!r}")
    bits = _as_int(vat.index_bits, "index bits")
    if not 1 <= bits <= MAX_INDEX_BITS:
        raise BitstreamError(f"index bits {bits} out of range 1..{MAX_INDEX_BITS}")
    codebook = _as_int(vat.codebook_size, "codebook size")
    if not 1 <= codebook <= 1 << bits:
        raise BitstreamError(f"codebook size {codebook} does not fit {bits}-bit indices")
    schedule = tuple(_as_int(n, "schedule token count") for n in vat.schedule)
    if not 1 <= len(schedule) <= MAX_SCALES:
        raise BitstreamError(f"schedule must have 1..{MAX_SCALES} scales, got {len(schedule)}")
    if min(schedule) < 1 or sum(schedule) > MAX_TOKENS:
        raise BitstreamError(f"schedule token counts must be >= 1 and total <= {MAX_TOKENS}")
    arrays = _check_indices(vat, schedule)
    if len(vat.center) != 3:
        raise BitstreamError("center must have 3 coordinates")
    center = [_as_f32(c, "center coordinate") for c in vat.center]
    scale = _as_f32(vat.scale, "scale")
    if scale <= 0:
        raise BitstreamError(f"scale must be > 0, got {scale}")
    extensions = _check_extensions(vat.extensions)

    coder_id = CUT_CODER if vat.completed else CODERS[vat.coder]
    out = bytearray(
        _FIXED.pack(MAGIC, major, minor, flags, bytes(model_id), coder_id, bits, *center, scale)
    )  # fmt: skip
    out += encode_varint(0 if codebook == 1 << bits else codebook)
    out += encode_varint(len(schedule))
    for n in schedule:
        out += encode_varint(n)
    out += encode_varint(len(arrays))
    out += encode_varint(len(extensions))
    for tag, value in extensions:
        out += bytes([tag]) + encode_varint(len(value)) + value
    if vat.coder == "range":
        from vatcodec.codec import entropy

        if tables is None:
            raise BitstreamError("the range coder needs the model's entropy tables")
        payload = entropy.pack_payload(arrays, entropy.check_tables(tables, len(schedule), codebook))
    elif vat.coder == "context":
        from vatcodec.codec import entropy

        if prior is None:
            raise BitstreamError("the context coder needs the model's prior")
        cut = encode_varint(len(arrays[-1])) if vat.completed else b""
        payload = _index_check(arrays) + cut + entropy.frame_segments(prior.encode(arrays, cut=vat.completed))
    else:
        payload = _pack_bits(np.concatenate(arrays), bits)
    if vat.coder == "zstd":
        payload = _zstd_compressor.compress(payload)
    out += payload
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Reader


def _check_envelope(data: bytes) -> None:
    """Magic, major version and CRC: the checks that decide whether to parse at all."""
    if not data:
        raise BitstreamError("not a .vat file (empty input)")
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise BitstreamError("not a .vat file (bad magic)")
    if len(data) > len(MAGIC) and data[len(MAGIC)] != FORMAT_MAJOR:
        raise BitstreamError(
            f"unsupported .vat major version {data[len(MAGIC)]} (this reader supports {FORMAT_MAJOR})"
        )
    if len(data) < _MIN_FILE:
        raise BitstreamError(f"truncated .vat file: {len(data)} bytes, minimum is {_MIN_FILE}")
    stored = struct.unpack_from("<I", data, len(data) - _CRC_BYTES)[0]
    computed = zlib.crc32(memoryview(data)[: len(data) - _CRC_BYTES])
    if stored != computed:
        raise BitstreamError(
            f"CRC mismatch (stored {stored:08x}, computed {computed:08x}): "
            "file is corrupt, truncated or has trailing bytes"
        )


def _decode_payload(payload: bytes, coder: int, count: int, bits: int) -> np.ndarray:
    raw_size = (count * bits + 7) // 8
    if coder == CODERS["zstd"]:
        try:
            declared = zstandard.frame_content_size(payload)
        except zstandard.ZstdError:
            raise BitstreamError("zstd payload has no valid frame header") from None
        if declared != raw_size:
            what = "no content size" if declared < 0 else f"content size {declared}"
            raise BitstreamError(f"zstd payload declares {what}, expected {raw_size} bytes")
        try:
            # Size was checked above, so this allocates at most raw_size (<= 2 MiB) bytes.
            payload = zstandard.ZstdDecompressor(max_window_size=1 << 23).decompress(
                payload, max_output_size=raw_size, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise BitstreamError(f"corrupt zstd payload: {exc}") from None
    if len(payload) != raw_size:
        raise BitstreamError(
            f"payload is {len(payload)} bytes, {count} indices x {bits} bits need {raw_size}"
        )
    return _unpack_bits(payload, count, bits)


def _parse_header(data: bytes) -> tuple[dict, int, bytes]:
    """Envelope and header: the VatFile fields but the indices, the number of present scales, the payload."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    _check_envelope(data)
    r = Reader(data, len(data) - _CRC_BYTES)
    _, major, minor, flags, model_id, coder, bits, cx, cy, cz, scale = _FIXED.unpack(
        r.take(_FIXED.size, "fixed header")
    )
    completed = coder == CUT_CODER
    if completed:
        coder = CODERS["context"]
    if coder not in CODER_NAMES:
        known = ", ".join(f"{v}={k}" for k, v in CODERS.items()) + f", {CUT_CODER}=context (cut)"
        raise BitstreamError(f"unknown coder id {coder} (this reader supports {known})")
    if not 1 <= bits <= MAX_INDEX_BITS:
        raise BitstreamError(f"index bits {bits} out of range 1..{MAX_INDEX_BITS}")
    if not all(map(math.isfinite, (cx, cy, cz, scale))) or not scale > 0:
        raise BitstreamError("transform must be finite with scale > 0")
    codebook = r.varint("codebook size", 0, (1 << bits) - 1) or 1 << bits
    n_sched = r.varint("schedule length", 1, MAX_SCALES)
    schedule, total = [], 0
    for i in range(n_sched):
        schedule.append(r.varint(f"token count of scale {i}", 1, MAX_TOKENS))
        total += schedule[-1]
    if total > MAX_TOKENS:
        raise BitstreamError(f"schedule totals {total} tokens, max {MAX_TOKENS}")
    present = r.varint("number of present scales", 1, n_sched)
    n_ext = r.varint("extension count", 0, 255)
    extensions, last_tag = {}, 0
    for _ in range(n_ext):
        tag = r.take(1, "extension tag")[0]
        if tag <= last_tag:
            raise BitstreamError(f"extension tag {tag} is zero, repeated or out of order")
        length = r.varint(f"extension {tag} length", 0, MAX_EXT_BYTES)
        extensions[tag] = r.take(length, f"extension {tag}")
        _check_known_extension(tag, extensions[tag])
        last_tag = tag
    fields = dict(
        model_id=model_id,
        codebook_size=codebook,
        index_bits=bits,
        schedule=tuple(schedule),
        center=(cx, cy, cz),
        scale=scale,
        coder=CODER_NAMES[coder],
        flags=flags,
        completed=completed,
        extensions=extensions,
        version=(major, minor),
    )
    return fields, present, data[r.pos : r.end]


def _index_check(arrays: list[np.ndarray]) -> bytes:
    """Coder 3's check of the decoded indices: the low 16 bits of the CRC-32 of them as int32 little-endian."""
    crc = zlib.crc32(np.concatenate(arrays).astype("<i4").tobytes()) if arrays else 0
    return struct.pack("<H", crc & 0xFFFF)


def _segments(fields: dict, payload: bytes, present: int) -> tuple[int | None, list[bytes]]:
    """A range- or context-coded payload's cut (coder 4's token count of its last scale, else None) and the coded
    bytes of each present scale (SPEC 5.1-5.3)."""
    from vatcodec.codec import entropy

    if fields["coder"] == "range":
        return None, entropy.split_payload(payload, present)
    if len(payload) < CHECK_BYTES:
        raise BitstreamError(f"context-coded payload is {len(payload)} bytes, shorter than its index check")
    r, cut = Reader(payload, len(payload)), None
    r.take(CHECK_BYTES, "index check")
    if fields["completed"]:
        full = fields["schedule"][present - 1]
        cut = r.varint(f"token count of cut scale {present - 1}", 1, full)
    return cut, entropy.split_payload(payload[r.pos :], present, "context-coded")


def _decode_indices(fields: dict, present: int, payload: bytes, tables, prior=None) -> list[np.ndarray]:
    schedule, codebook = fields["schedule"], fields["codebook_size"]
    if fields["coder"] == "context":
        cut, segments = _segments(fields, payload, present)
        if prior is None:
            raise BitstreamError(
                f"this file is context-coded: decoding it needs the prior of model {bytes(fields['model_id']).hex()}"
            )
        if list(schedule[:present]) != list(prior.counts[:present]):
            raise BitstreamError(f"the file's schedule {list(schedule)} is not the prior's {prior.counts}")
        arrays = prior.decode(segments, cut)
        if max(int(a.max()) for a in arrays) >= codebook or _index_check(arrays) != payload[:CHECK_BYTES]:
            raise BitstreamError(
                "context-coded indices fail their check: the file is corrupt, or this machine computed the"
                " model's prior differently from the one that wrote it"
            )
        return arrays
    if fields["coder"] == "range":
        from vatcodec.codec import entropy

        _, segments = _segments(fields, payload, present)  # framing first: a bad file fails without tables
        if tables is None:
            raise BitstreamError(
                f"this file is range-coded: decoding it needs the entropy tables of model"
                f" {bytes(fields['model_id']).hex()}"
            )
        freq_SK = entropy.check_tables(tables, len(schedule), codebook)
        return entropy.decode_payload(segments, list(schedule[:present]), freq_SK)
    count = sum(schedule[:present])
    flat = _decode_payload(payload, CODERS[fields["coder"]], count, fields["index_bits"])
    if count and flat.max() >= codebook:
        raise BitstreamError(f"index {int(flat.max())} >= codebook size {codebook}")
    return list(np.split(flat, np.cumsum(schedule[: present - 1])))


def unpack(data: bytes, tables=None, prior=None) -> VatFile:
    """Parse and fully validate .vat bytes (magic, version, CRC, every length and index).

    Args:
        data: the file's bytes.
        tables: the model's entropy tables `freq_SK`; needed only to decode a range-coded file (coder 2).
        prior: the model's `ContextPrior`; needed only to decode a context-coded file (coder 3).

    Raises:
        BitstreamError: the bytes are not a valid .vat file this reader supports, a range-coded file
            comes without tables (or with tables of the wrong shape), or a context-coded file without its
            prior (or its indices fail their check).
    """
    fields, present, payload = _parse_header(data)
    return VatFile(indices=_decode_indices(fields, present, payload, tables, prior), **fields)


def header_info(data: bytes) -> dict:
    """Validate a .vat file and describe it as JSON-serializable fields (for `vatcodec info`).

    Needs no model: a range- or context-coded file is checked up to its per-scale framing, and `scale_bytes`
    lists the coded bytes of each present scale.
    """
    fields, present, payload = _parse_header(data)
    vat = VatFile(indices=[], **fields)
    cut = None
    if vat.coder in ("range", "context"):
        cut, segments = _segments(fields, payload, present)
        scale_bytes = [len(seg) for seg in segments]
    else:
        _decode_indices(fields, present, payload, None)
    tokens = sum(vat.schedule[: present - 1]) + (vat.schedule[present - 1] if cut is None else cut)
    info = {
        "format": f"vat {vat.version[0]}.{vat.version[1]}",
        "file_bytes": len(data),
        "header_bytes": len(data) - len(payload),
        "payload_bytes": len(payload),
        "model_id": bytes(vat.model_id).hex(),
        "codebook_size": vat.codebook_size,
        "index_bits": vat.index_bits,
        "coder": vat.coder,
        "flags": vat.flags,
        "schedule": list(vat.schedule),
        "scales_present": present,
        "scales_total": len(vat.schedule),
        "tokens_present": tokens,
        "tokens_total": sum(vat.schedule),
        "bits_per_token": round(8 * len(payload) / tokens, 3),
        "center": list(vat.center),
        "scale": vat.scale,
        "extensions": {str(tag): value.hex() for tag, value in sorted(vat.extensions.items())},
    }
    if vat.coder in ("range", "context"):
        info["scale_bytes"] = scale_bytes
    if vat.completed:
        info["completed"] = (
            True  # the decoder fills the tokens the file lacks with the prior's expected codes
        )
    if EXT_FSCORE in vat.extensions:
        fscore = struct.unpack("<f", vat.extensions[EXT_FSCORE])[0]
        info["fscore"] = fscore if math.isfinite(fscore) else None  # keep the JSON strict
    if EXT_LEVEL in vat.extensions:
        info["level_offset"] = level_offset(vat)
    return info
