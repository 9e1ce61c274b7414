"""Regenerate the .vat v1 conformance vectors in format/vectors/ (deterministically).

Usage: python format/make_vectors.py [--check]
Each vector is NAME.vat plus NAME.json: for a valid file the fields a reader must decode (indices
included), for an invalid one the substring of the error our reader raises. Index values come
from a fixed integer recurrence, not a seeded RNG, so they never depend on a numpy version. The
zstd vector's bytes depend on the libzstd version; its decoded content does not. Range-coded
vectors (coder 2) carry the model's entropy tables in their JSON as "tables" (scales x codebook).
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import zstandard

try:
    from vatcodec.codec import bitstream as bs
    from vatcodec.codec import entropy
except ImportError:  # running from a checkout without `pip install -e`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from vatcodec.codec import bitstream as bs
    from vatcodec.codec import entropy

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
PAPER_SCHEDULE = (1, 4, 9, 16, 25, 36, 64, 100, 169, 196, 576, 1024)
MODEL_ID = bytes.fromhex("0123456789abcdef")


def _sequence(count: int, modulus: int, seed: int) -> np.ndarray:
    """Deterministic pseudo-random integers in [0, modulus) (64-bit LCG, high bits)."""
    state, out = seed, []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append((state >> 33) % modulus)
    return np.array(out, dtype=np.int64)


def _split(flat: np.ndarray, schedule: tuple[int, ...], present: int) -> list[np.ndarray]:
    return list(np.split(flat, np.cumsum(schedule[: present - 1])))


def _skewed(count: int, modulus: int, seed: int) -> np.ndarray:
    """Deterministic integers in [0, modulus) that favour small values (a product of two uniforms)."""
    return _sequence(count, modulus, seed) * _sequence(count, modulus, seed + 1) // modulus


RANGE_SCHEDULE = (1, 4, 9, 16)
RANGE_K = 64


def range_tables() -> np.ndarray:
    """Tables of the range vectors: per scale, counts of 4000 skewed draws plus 1 (Laplace), quantized."""
    counts_SK = [np.bincount(_skewed(4000, RANGE_K, 20 + s), minlength=RANGE_K) for s in range(4)]
    return entropy.build_tables(np.stack(counts_SK), 1.0)


def _range_file(present: int, **changes) -> bs.VatFile:
    flat = _skewed(sum(RANGE_SCHEDULE), RANGE_K, 30)
    fields = dict(
        model_id=MODEL_ID, codebook_size=RANGE_K, index_bits=6, schedule=RANGE_SCHEDULE,
        indices=_split(flat, RANGE_SCHEDULE, 4)[:present], center=(0.25, 0.5, -1.0), scale=0.5,
        coder="range", version=(1, 1),
    )  # fmt: skip
    fields.update(changes)
    return bs.VatFile(**fields)


def _with_crc(body: bytes) -> bytes:
    """Append a correct CRC so that a deliberately broken field is what the reader trips on."""
    return body + struct.pack("<I", zlib.crc32(body))


def valid_vectors() -> dict[str, tuple[str, bs.VatFile]]:
    """Name -> (description, VatFile) for every valid vector."""
    paper_tokens = sum(PAPER_SCHEDULE)
    skewed = _sequence(paper_tokens, 16384, 7)
    skewed[_sequence(paper_tokens, 8, 8) != 0] %= 16  # 7/8 of tokens small: zstd has work to do
    wide = _sequence(85, 1 << 16, 5)
    wide[0], wide[-1] = 0, (1 << 16) - 1
    return {
        "min_1scale": (
            "smallest useful file: one scale of one 1-bit token, identity transform",
            bs.VatFile(MODEL_ID, 2, 1, (1,), [np.array([1])]),
        ),
        "range_4scale": (
            "range coder (id 2, format 1.1), 4 scales of a 64-entry codebook, skewed indices and tables",
            _range_file(4),
        ),
        "range_prefix_2of4": (
            "range coder with 2 of 4 scales present: one length varint, then the last scale to the end",
            _range_file(2),
        ),
        "range_1entry": (
            "range coder over a one-entry codebook: every segment is empty, every index 0",
            bs.VatFile(MODEL_ID, 1, 1, (1, 4), [np.zeros(1, int), np.zeros(4, int)], coder="range",
                       version=(1, 1)),
        ),
        "paper_12scale_raw": (
            "the paper's 12-scale schedule (2220 tokens), 16384-entry codebook, raw coder",
            bs.VatFile(
                MODEL_ID, 16384, 14, PAPER_SCHEDULE,
                _split(_sequence(paper_tokens, 16384, 1), PAPER_SCHEDULE, 12),
                center=(0.5, -0.25, 1.0), scale=2.0,
            ),
        ),
        "paper_12scale_zstd": (
            "paper schedule with low-entropy indices, zstd coder",
            bs.VatFile(
                MODEL_ID, 16384, 14, PAPER_SCHEDULE, _split(skewed, PAPER_SCHEDULE, 12),
                center=(0.5, -0.25, 1.0), scale=2.0, coder="zstd",
            ),
        ),
        "prefix_5of12": (
            "only the first 5 of 12 scales present; codebook 1000 (not a power of two)",
            bs.VatFile(
                MODEL_ID, 1000, 10, PAPER_SCHEDULE,
                _split(_sequence(55, 1000, 3), PAPER_SCHEDULE, 5),
                center=(-12.5, 3.75, 100.0), scale=0.03125,
            ),
        ),
        "extensions_minor3": (
            "minor version 3 with flags, an F-score extension and an unknown extension tag",
            bs.VatFile(
                MODEL_ID, 256, 8, (1, 4, 9), _split(_sequence(14, 256, 4), (1, 4, 9), 3),
                flags=0x80, version=(1, 3),
                extensions={1: struct.pack("<f", 0.9375), 200: b"future field"},
            ),
        ),
        "level_minor2": (
            "minor version 2 with a surface-level extension (tag 2): -3 steps, -0.1875 logit",
            bs.VatFile(
                MODEL_ID, 256, 8, (1, 4), _split(_sequence(5, 256, 6), (1, 4), 2),
                version=(1, 2), extensions=bs.level_extension(-3),
            ),
        ),
        "wide_16bit": (
            "16-bit indices over a 65536-entry codebook, including 0 and 65535",
            bs.VatFile(MODEL_ID, 1 << 16, 16, (1, 4, 16, 64), _split(wide, (1, 4, 16, 64), 4)),
        ),
    }  # fmt: skip


def invalid_vectors(valid: dict[str, bytes]) -> dict[str, tuple[str, bytes, str]]:
    """Name -> (description, bytes, expected error substring), derived from valid files.

    The errors of the vectors in NEEDS_TABLES show only when decoding with the model's entropy tables.
    """
    minimal, paper = valid["min_1scale"], valid["paper_12scale_raw"]
    ranged, one_entry = valid["range_4scale"], valid["range_1entry"]
    range_at = len(ranged) - 4 - bs.header_info(ranged)["payload_bytes"]  # scale 0's length varint
    one_scale = bs.pack(_range_file(1), tables=range_tables())
    one_scale_at = len(one_scale) - 4 - bs.header_info(one_scale)["payload_bytes"]
    body = minimal[:-4]  # offsets below follow the SPEC table: varints start at byte 32
    prefix = valid["prefix_5of12"]
    level = valid["level_minor2"]
    at = level.index(b"\x01\x02\x01\xfd") + 1  # extension count 1, then tag 2, length 1, value -3
    payload_at = len(prefix) - 4 - (55 * 10 + 7) // 8
    bomb = zstandard.ZstdCompressor(level=1).compress(bytes(10_000_000))
    zstd_body = bytearray(body[:-1] + bomb)
    zstd_body[14] = bs.CODERS["zstd"]
    return {
        "bad_magic": ("a PNG signature", b"\x89PNG\r\n\x1a\n" + bytes(40), "bad magic"),
        "level_two_bytes": (
            "level_minor2 with its surface-level extension 2 bytes long, CRC recomputed",
            _with_crc(level[:at] + b"\x02\x02\xfd\x00" + level[at + 3 : -4]),
            "extension 2 (surface level) must be 1 byte",
        ),
        "empty": ("zero bytes", b"", "empty input"),
        "unsupported_major": (
            "major version 7 with a valid CRC",
            _with_crc(body[:3] + b"\x07" + body[4:]),
            "unsupported .vat major version 7 (this reader supports 1)",
        ),
        "bad_crc": ("min_1scale with its last CRC byte flipped", minimal[:-1] + b"\x00", "CRC"),
        "truncated_header": ("first 20 bytes of a file", paper[:20], "truncated"),
        "truncated_payload": ("paper_12scale_raw cut in half", paper[: len(paper) // 2], "CRC"),
        "trailing_bytes": (
            "an extra payload byte, CRC recomputed",
            _with_crc(body + b"\x00"),
            "payload is 2 bytes",
        ),
        "unknown_coder": (
            "coder id 9, CRC recomputed",
            _with_crc(body[:14] + b"\x09" + body[15:]),
            "unknown coder id 9",
        ),
        "index_out_of_range": (
            "prefix_5of12 with its first index set to 1023 >= codebook size 1000",
            _with_crc(
                prefix[:payload_at]
                + bytes([0xFF, prefix[payload_at + 1] | 0xC0])
                + prefix[payload_at + 2 : -4]
            ),
            "index 1023 >= codebook size 1000",
        ),
        "huge_varint": (
            "a token count varint claiming 2**60 tokens",
            _with_crc(body[:34] + bs.encode_varint(1 << 60) + body[35:]),
            "varint longer than 3 bytes",
        ),
        "nonminimal_varint": (
            "codebook size 0 written as the two bytes 80 00",
            _with_crc(body[:32] + b"\x80\x00" + body[33:]),
            "non-minimal varint",
        ),
        "nonzero_padding": (
            "min_1scale with a padding bit set after its single 1-bit index",
            _with_crc(body[:-1] + bytes([body[-1] | 0x01])),
            "non-zero padding",
        ),
        "extension_order": (
            "extension tags 5 then 3",
            _with_crc(body[:36] + b"\x02\x05\x00\x03\x00" + body[37:]),
            "out of order",
        ),
        "range_segment_overrun": (
            "range_4scale with scale 0's coded length set to 127, more bytes than the payload holds",
            _with_crc(ranged[:range_at] + b"\x7f" + ranged[range_at + 1 : -4]),
            "range-coded scale 0 needs 127 bytes",
        ),
        "range_bad_quantile": (
            "one range-coded scale whose bytes start FF FF FF FF FF: the first quantile is 2**24",
            _with_crc(one_scale[:one_scale_at] + b"\xff" * 5),
            "corrupt range-coded payload",
        ),
        "range_1entry_nonempty": (
            "range_1entry with one byte in its last segment: a one-entry codebook codes nothing",
            _with_crc(one_entry[:-4] + b"\x00"),
            "one-entry codebook",
        ),
        "zstd_bomb": (
            "zstd payload declaring 10 MB of output for a 1-token schedule",
            _with_crc(bytes(zstd_body)),
            "zstd payload declares content size 10000000",
        ),
    }


def tables_for(name: str) -> np.ndarray | None:
    """The entropy tables a range-coded vector is decoded with; None for the others."""
    if name.startswith("range_1entry"):
        return np.full((2, 1), entropy.TOTAL)
    return range_tables() if name.startswith("range_") else None


NEEDS_TABLES = ("range_bad_quantile", "range_1entry_nonempty")  # rejected only by a reader with tables


def _expected_fields(description: str, vat: bs.VatFile) -> dict:
    return {
        "valid": True,
        "description": description,
        "version": list(vat.version),
        "flags": vat.flags,
        "model_id": vat.model_id.hex(),
        "codebook_size": vat.codebook_size,
        "index_bits": vat.index_bits,
        "coder": vat.coder,
        "schedule": list(vat.schedule),
        "num_scales": vat.num_scales,
        "center": list(vat.center),
        "scale": vat.scale,
        "extensions": {str(k): v.hex() for k, v in sorted(vat.extensions.items())},
        "indices": [a.tolist() for a in vat.indices],
    }


def build() -> dict[str, tuple[bytes, dict]]:
    """Every vector as name -> (file bytes, expected JSON object)."""
    out, valid_bytes = {}, {}
    for name, (description, vat) in valid_vectors().items():
        tables = tables_for(name)
        valid_bytes[name] = bs.pack(vat, tables=tables)
        out[name] = (valid_bytes[name], _expected_fields(description, vat))
        if tables is not None:
            out[name][1]["tables"] = tables.tolist()
    for name, (description, data, error) in invalid_vectors(valid_bytes).items():
        out[name] = (data, {"valid": False, "description": description, "error": error})
        if name in NEEDS_TABLES:
            out[name][1]["tables"] = tables_for(name).tolist()
    return out


def main(argv: list[str]) -> int:
    """Write the vectors, or with --check report any that differ from the files on disk."""
    check = "--check" in argv
    stale = []
    VECTOR_DIR.mkdir(exist_ok=True)
    for name, (data, expected) in build().items():
        text = json.dumps(expected, indent=1) + "\n"
        vat_path, json_path = VECTOR_DIR / f"{name}.vat", VECTOR_DIR / f"{name}.json"
        if check:
            same = vat_path.exists() and vat_path.read_bytes() == data
            if not same or not json_path.exists() or json_path.read_text() != text:
                stale.append(name)
        else:
            vat_path.write_bytes(data)
            json_path.write_text(text)
    if stale:
        print("stale vectors: " + ", ".join(stale))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
