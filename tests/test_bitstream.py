"""Tests for the .vat v1 container: round trips, conformance vectors, and hostile input."""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import time
import tracemalloc
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vatcodec.codec import bitstream as bs
from vatcodec.errors import BitstreamError

FORMAT_DIR = Path(__file__).resolve().parent.parent / "format"
VECTOR_DIR = FORMAT_DIR / "vectors"
PAPER_SCHEDULE = (1, 4, 9, 16, 25, 36, 64, 100, 169, 196, 576, 1024)
FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _parse_ok_or_bitstream_error(data: bytes) -> bs.VatFile | None:
    """The reader's contract: a VatFile or a BitstreamError, never any other exception."""
    try:
        return bs.unpack(data)
    except BitstreamError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None


f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def vat_files(draw) -> bs.VatFile:
    bits = draw(st.integers(1, 16))
    codebook = draw(st.integers(1, 1 << bits))
    schedule = tuple(draw(st.lists(st.integers(1, 300), min_size=1, max_size=12)))
    present = draw(st.integers(1, len(schedule)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    indices = []
    for n in schedule[:present]:
        arr = rng.integers(0, codebook, n)
        if draw(st.booleans()):  # make the extreme values likely, they find packing bugs
            arr[rng.integers(0, n)] = codebook - 1
        indices.append(arr.astype(draw(st.sampled_from([np.int64, np.int32, np.uint16]))))
    extensions = draw(st.dictionaries(st.integers(3, 255), st.binary(max_size=20), max_size=3))
    if draw(st.booleans()):
        extensions[bs.EXT_FSCORE] = struct.pack("<f", draw(f32))
    if draw(st.booleans()):
        extensions.update(bs.level_extension(draw(st.integers(-128, 127))))
    return bs.VatFile(
        model_id=draw(st.binary(min_size=8, max_size=8)),
        codebook_size=codebook,
        index_bits=bits,
        schedule=schedule,
        indices=indices,
        center=(draw(f32), draw(f32), draw(f32)),
        scale=draw(f32.filter(lambda x: x > 0)),
        coder=draw(st.sampled_from(["raw", "zstd"])),  # the range coder needs tables: tests/test_entropy.py
        flags=draw(st.integers(0, 255)),
        extensions=extensions,
        version=(1, draw(st.integers(0, 255))),
    )


# --- round trips ------------------------------------------------------------------------------


@FUZZ
@given(vat_files())
def test_roundtrip_is_bit_exact(vat):
    data = bs.pack(vat)
    back = bs.unpack(data)
    assert back == vat
    assert all(a.dtype == np.int64 for a in back.indices)
    assert bs.pack(back) == data
    info = bs.header_info(data)
    assert info["file_bytes"] == len(data)
    assert info["tokens_present"] == sum(len(a) for a in vat.indices)
    if vat.coder == "raw":
        assert info["payload_bytes"] == (info["tokens_present"] * vat.index_bits + 7) // 8


def test_spec_bit_packing_example():
    """SPEC section 3: indices 3, 17, 30 at 5 bits pack to 1C 7C."""
    data = bs.pack(bs.VatFile(bytes(8), 32, 5, (3,), [np.array([3, 17, 30])]))
    assert data[-6:-4] == bytes.fromhex("1c7c")


def test_spec_hexdump_matches_vector():
    spec = (FORMAT_DIR / "SPEC.md").read_text()
    block = re.search(r"<!-- hexdump:min_1scale -->\n```\n(.*?)```", spec, re.S).group(1)
    hex_bytes = "".join(re.match(r"((?:[0-9a-f]{2} )+)", line).group(1) for line in block.splitlines())
    assert bytes.fromhex(hex_bytes) == (VECTOR_DIR / "min_1scale.vat").read_bytes()


def test_header_size_for_paper_schedule():
    rng = np.random.default_rng(0)
    vat = bs.VatFile(
        b"\x00" * 8, 16384, 14, PAPER_SCHEDULE, [rng.integers(0, 16384, n) for n in PAPER_SCHEDULE]
    )
    info = bs.header_info(bs.pack(vat))
    assert info["header_bytes"] == 56  # the compactness budget documented in SPEC.md
    assert info["payload_bytes"] == 2220 * 14 // 8  # 3885, no padding needed


def test_prefix_file_keeps_full_schedule():
    vat = bs.VatFile(bytes(8), 1000, 10, PAPER_SCHEDULE, [np.arange(n) for n in (1, 4, 9)])
    back = bs.unpack(bs.pack(vat))
    assert back.num_scales == 3 and back.schedule == PAPER_SCHEDULE


@pytest.mark.parametrize(
    ("size", "bits"), [(1, 1), (2, 1), (3, 2), (256, 8), (2048, 11), (16384, 14), (16385, 15)]
)
def test_index_bits_for(size, bits):
    assert bs.index_bits_for(size) == bits


@pytest.mark.parametrize("size", [0, -1, 65537])
def test_index_bits_for_rejects(size):
    with pytest.raises(BitstreamError):
        bs.index_bits_for(size)


def test_bit_packing_is_fast():
    """1024 indices x 14 bits must pack and unpack in well under 1 ms."""
    rng = np.random.default_rng(1)
    vat = bs.VatFile(bytes(8), 16384, 14, (1024,), [rng.integers(0, 16384, 1024)])
    data = bs.pack(vat)
    best_pack = best_unpack = 1.0
    for _ in range(30):
        t0 = time.perf_counter()
        bs.pack(vat)
        t1 = time.perf_counter()
        bs.unpack(data)
        t2 = time.perf_counter()
        best_pack, best_unpack = min(best_pack, t1 - t0), min(best_unpack, t2 - t1)
    assert best_pack < 1e-3 and best_unpack < 1e-3


# --- writer validation ------------------------------------------------------------------------


def _good(**changes) -> bs.VatFile:
    fields = dict(
        model_id=bytes(8), codebook_size=1000, index_bits=10, schedule=(1, 4),
        indices=[np.array([999]), np.array([0, 1, 2, 3])],
    )  # fmt: skip
    fields.update(changes)
    return bs.VatFile(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_id": b"short"}, "model id"),
        ({"codebook_size": 1025}, "does not fit 10-bit"),
        ({"index_bits": 17}, "index bits 17"),
        ({"indices": [np.array([1000])]}, "index 1000 outside codebook"),
        ({"indices": [np.array([-1])]}, "index -1 outside codebook"),
        ({"indices": [np.array([1, 2])]}, "2 indices, schedule says 1"),
        ({"indices": [np.array([0.5])]}, "integer array"),
        ({"indices": []}, "present scales"),
        ({"indices": [np.array([1])] * 3}, "present scales"),
        ({"schedule": (1, 0), "indices": [np.array([1])]}, "token counts"),
        ({"coder": "lzma"}, "unknown coder 'lzma'"),
        ({"scale": 0.0}, "scale must be > 0"),
        ({"scale": float("nan")}, "not a finite float32"),
        ({"center": (0.0, 1e39, 0.0)}, "not a finite float32"),
        ({"extensions": {0: b""}}, "extension tag 0"),
        ({"extensions": {1: b"12345"}}, "F-score"),
        ({"version": (2, 0)}, "cannot write version 2.0"),
        ({"flags": 256}, "flags 256"),
    ],
)
def test_pack_rejects_bad_fields(changes, message):
    with pytest.raises(BitstreamError, match=re.escape(message)):
        bs.pack(_good(**changes))


# --- conformance vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in VECTOR_DIR.glob("*.json")))
def test_conformance_vector(name):
    expected = json.loads((VECTOR_DIR / f"{name}.json").read_text())
    data = (VECTOR_DIR / f"{name}.vat").read_bytes()
    tables = expected.get("tables")  # range-coded vectors: the model's entropy tables
    if not expected["valid"]:
        with pytest.raises(BitstreamError) as info:
            bs.unpack(data, tables=tables)
        assert expected["error"] in str(info.value)
        return
    vat = bs.unpack(data, tables=tables)
    assert list(vat.version) == expected["version"]
    assert vat.model_id.hex() == expected["model_id"]
    assert (vat.codebook_size, vat.index_bits) == (
        expected["codebook_size"],
        expected["index_bits"],
    )
    assert (vat.coder, vat.flags, vat.num_scales) == (
        expected["coder"], expected["flags"], expected["num_scales"],
    )  # fmt: skip
    assert list(vat.schedule) == expected["schedule"]
    assert list(vat.center) == expected["center"] and vat.scale == expected["scale"]
    assert {str(k): v.hex() for k, v in vat.extensions.items()} == expected["extensions"]
    assert [a.tolist() for a in vat.indices] == expected["indices"]
    if vat.coder == "raw":
        assert bs.pack(vat) == data
    if vat.coder == "range":  # not canonical in general, but our writer is deterministic
        assert bs.pack(vat, tables=tables) == data
        with pytest.raises(BitstreamError, match="needs the entropy tables"):
            bs.unpack(data)


def test_vectors_are_up_to_date():
    spec = importlib.util.spec_from_file_location("make_vectors", FORMAT_DIR / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    assert sorted(built) == sorted(p.stem for p in VECTOR_DIR.glob("*.vat"))
    for name, (data, expected) in built.items():
        on_disk = (VECTOR_DIR / f"{name}.vat").read_bytes()
        assert json.loads((VECTOR_DIR / f"{name}.json").read_text()) == expected, name
        if expected.get("coder") == "zstd":  # compressed bytes may differ across libzstd versions
            assert bs.unpack(on_disk) == bs.unpack(data)
        else:
            assert on_disk == data, name


# --- hostile input ----------------------------------------------------------------------------


def _valid_samples() -> list[bytes]:
    names = [
        "min_1scale",
        "prefix_5of12",
        "extensions_minor3",
        "wide_16bit",
        "paper_12scale_zstd",
        "range_4scale",
    ]
    return [(VECTOR_DIR / f"{n}.vat").read_bytes() for n in names]


def test_every_truncation_and_bit_flip_is_rejected():
    for data in _valid_samples():
        for n in range(len(data)):
            with pytest.raises(BitstreamError):
                bs.unpack(data[:n])
        with pytest.raises(BitstreamError):
            bs.unpack(data + b"\x00")
        if len(data) > 300:
            continue  # the zstd sample is covered by truncations; bit flips on the small ones
        for bit in range(len(data) * 8):
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(BitstreamError):
                bs.unpack(bytes(flipped))


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_are_rejected(data):
    with pytest.raises(BitstreamError):
        bs.unpack(data)


@FUZZ
@given(st.integers(0, 255), st.binary(max_size=600))
def test_random_body_with_valid_envelope(minor, body):
    """Past magic, version and CRC the parser must still fail cleanly on arbitrary fields."""
    data = _with_crc(b"VAT\x01" + bytes([minor]) + body)
    vat = _parse_ok_or_bitstream_error(data)
    if vat is not None and vat.coder == "raw":
        assert bs.pack(vat) == data


@FUZZ
@given(st.data())
def test_mutated_fields_with_fixed_crc(data):
    """Corrupt header or payload bytes and repair the CRC: rejected, or a canonical valid file."""
    original = data.draw(st.sampled_from(_valid_samples()))
    body = bytearray(original[:-4])
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(5, len(body) - 1))  # keep magic/version: tested elsewhere
        body[pos] = data.draw(st.integers(0, 255))
    mutated = _with_crc(bytes(body))
    vat = _parse_ok_or_bitstream_error(mutated)
    if vat is not None and vat.coder == "raw":
        assert bs.pack(vat) == mutated


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _expect_error(data: bytes, message: str):
    def run():
        with pytest.raises(BitstreamError, match=re.escape(message)):
            bs.unpack(data)

    return run


def test_huge_claims_fail_without_allocating():
    minimal = (VECTOR_DIR / "min_1scale.vat").read_bytes()[:-4]
    # 2**60 tokens: rejected by the 3-byte varint bound.
    huge = _with_crc(minimal[:34] + bytes([0xFF] * 8 + [0x0F]) + minimal[35:])
    assert _peak_bytes(_expect_error(huge, "varint longer")) < 1 << 20
    # The largest legal claim (2**20 tokens x 16 bits = 2 MiB) backed by a 1-byte payload.
    body = bytearray(minimal)
    body[15] = 16
    big = _with_crc(bytes(body[:34]) + bs.encode_varint(1 << 20) + bytes(body[35:]))
    assert _peak_bytes(_expect_error(big, "payload is 1 bytes")) < 1 << 20


def test_zstd_bomb_is_not_decompressed():
    bomb_frame = zstandard.ZstdCompressor(level=1).compress(bytes(50_000_000))
    body = bytearray((VECTOR_DIR / "min_1scale.vat").read_bytes()[:-5])
    body[14] = bs.CODERS["zstd"]
    data = _with_crc(bytes(body) + bomb_frame)
    assert _peak_bytes(_expect_error(data, "declares content size 50000000")) < 1 << 20


def test_zstd_frame_without_content_size_is_rejected():
    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    frame = cobj.compress(b"\x80") + cobj.flush()
    body = bytearray((VECTOR_DIR / "min_1scale.vat").read_bytes()[:-5])
    body[14] = bs.CODERS["zstd"]
    with pytest.raises(BitstreamError, match="declares no content size"):
        bs.unpack(_with_crc(bytes(body) + frame))


def test_unknown_major_message_is_exact():
    with pytest.raises(BitstreamError) as info:
        bs.unpack(b"VAT\x07" + bytes(60))
    assert str(info.value) == "unsupported .vat major version 7 (this reader supports 1)"


def test_higher_minor_is_accepted():
    data = bytearray((VECTOR_DIR / "min_1scale.vat").read_bytes()[:-4])
    data[4] = 200
    assert bs.unpack(_with_crc(bytes(data))).version == (1, 200)
