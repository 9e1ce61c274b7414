"""The range coder (.vat coder 2): tables, exact round trips, the SPEC's decoder, hostile payloads, real files."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import struct
import time
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from conftest import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vatcodec import codec
from vatcodec.codec import bitstream as bs
from vatcodec.codec import entropy
from vatcodec.errors import BitstreamError, VatError
from vatcodec.model.checkpoint import TABLES_KEY, load_model, save_checkpoint, set_entropy_tables

FUZZ = settings(max_examples=80, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
VAT_S_SCHEDULE = (1, 4, 9, 16, 25, 36, 64, 100, 144, 256)


def spec_decode(segment: bytes, count: int, freq: list[int]) -> list[int] | None:
    """format/SPEC.md section 5.1 written out in plain integers: an independent decoder. None = invalid."""
    if len(freq) == 1:
        return None if segment else [0] * count
    cdf = [0]
    for f in freq:
        cdf.append(cdf[-1] + f)
    mask, pos = (1 << 64) - 1, 0

    def word() -> int:
        nonlocal pos
        chunk = segment[pos : pos + 4]
        pos += 4
        return int.from_bytes(chunk + bytes(4 - len(chunk)), "big")

    lower, rng = 0, mask
    point = (word() << 32) | word()
    out = []
    for _ in range(count):
        scale = rng >> 24
        q = ((point - lower) & mask) // scale
        if q >= 1 << 24:
            return None
        k = bisect.bisect_right(cdf, q) - 1
        out.append(k)
        lower = (lower + scale * cdf[k]) & mask
        rng = scale * freq[k]
        if rng < 1 << 32:
            lower, rng = (lower << 32) & mask, rng << 32
            point = ((point << 32) & mask) | word()
    return out


@st.composite
def table_and_indices(draw, max_k: int = 600, max_n: int = 300):
    """A table (uniform, random, extremely skewed, one-symbol-heavy or a one-entry codebook) and indices."""
    kind = draw(st.sampled_from(["uniform", "random", "skew", "one_entry", "two"]))
    size = {"one_entry": 1, "two": 2}.get(kind) or draw(st.integers(2, max_k))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    counts = np.zeros(size, dtype=np.int64)
    alpha = 1.0
    if kind == "random":
        counts = rng.integers(0, 1000, size) * (rng.random(size) < 0.3)
        alpha = draw(st.sampled_from([1 / 1024, 0.05, 1.0, 4.0]))
    elif kind in ("skew", "two"):
        counts[rng.integers(size)] = 10**9  # every other symbol gets the minimum frequency 1 / 2**24
        alpha = 1 / 1024
    freq = entropy.build_table(counts, alpha)
    n = draw(st.integers(1, max_n))
    mode = draw(st.sampled_from(["follow", "uniform", "rarest"]))
    if mode == "follow":
        idx = rng.choice(size, n, p=freq / entropy.TOTAL)
    elif mode == "uniform":
        idx = rng.integers(0, size, n)
    else:
        idx = np.full(n, int(np.argmin(freq)))
    return freq, idx.astype(np.int64)


# --- tables ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("counts", [[0], [5], [0, 0, 0], [1, 2, 3], [10**12, 0, 7], list(range(4096))])
@pytest.mark.parametrize("alpha", [1 / 1024, 0.3, 1.0, 8.0])
def test_build_table_is_exact_and_positive(counts, alpha):
    freq = entropy.build_table(np.array(counts), alpha)
    assert freq.dtype == np.int64 and freq.sum() == entropy.TOTAL and freq.min() >= 1
    assert np.array_equal(freq, entropy.build_table(np.array(counts), alpha))  # pure integer arithmetic
    weights = np.array(counts, dtype=np.float64) + round(alpha * 1024) / 1024
    # Within 1 of the ideal share of the free mass: quantization loses at most one unit per entry.
    ideal = 1 + weights / weights.sum() * (entropy.TOTAL - len(counts))
    assert np.abs(freq - ideal).max() <= 1.0


def test_check_tables_rejects_bad_tables():
    good = entropy.build_tables(np.ones((2, 8), dtype=np.int64), 1.0)
    assert entropy.check_tables(good.astype(np.int32), 2, 8).dtype == np.int64
    bad_sum, zero = good.copy(), good.copy()
    bad_sum[0, 0] += 1
    zero[1, 0], zero[1, 1] = 0, zero[1, 1] + zero[1, 0]
    for tables, message in [
        (good, "shape (3, 8)"),
        (good[:, :7], "shape (2, 8)"),
        (good.astype(np.float64), "integer array"),
        (bad_sum, "summing to 16777216"),
        (zero, "frequency >= 1"),
    ]:
        with pytest.raises(BitstreamError, match=message.replace("(", r"\(").replace(")", r"\)")):
            entropy.check_tables(tables, 3 if "3" in message else 2, 8)


def test_tables_id_tracks_weights_and_tables():
    t = entropy.build_tables(np.ones((2, 8), dtype=np.int64), 1.0)
    u = t.copy()
    u[0, :2] += (1, -1)
    ids = {entropy.tables_id(w, x) for w in (bytes(8), b"\1" * 8) for x in (t, u)}
    assert len(ids) == 4 and all(len(i) == bs.MODEL_ID_BYTES for i in ids)


# --- one scale: exactness, the SPEC decoder, shortest output ----------------------------------------------------


@settings(FUZZ, max_examples=300)
@given(table_and_indices())
def test_scale_round_trip_matches_the_spec_decoder(case):
    freq, idx = case
    data = entropy.encode_scale(idx, freq)
    assert np.array_equal(entropy.decode_scale(data, len(idx), freq), idx)
    # An independent decoder written from SPEC 5.1 with plain integers agrees: the coder's model is exactly the
    # integer table, not a float approximation of it.
    assert spec_decode(data, len(idx), freq.tolist()) == idx.tolist()
    assert entropy.encode_scale(idx, freq) == data  # deterministic
    if data:  # shortest: one byte less (either candidate) no longer decodes
        head = int.from_bytes(data[:-1], "big")
        for cand in {head, head + 1}:
            if cand < 1 << (8 * (len(data) - 1)):
                assert (
                    spec_decode(cand.to_bytes(len(data) - 1, "big"), len(idx), freq.tolist()) != idx.tolist()
                )
    ideal_bits = -np.log2(freq[idx] / entropy.TOTAL).sum()
    assert len(data) <= ideal_bits / 8 + 9  # near the information content: at most the sealing words


def test_spec_example():
    """format/SPEC.md 5.1: table (1/2, 1/4, 1/8, 1/8) of 2**24, indices 1, 3, 0 -> the one byte B8."""
    spec = (Path(__file__).resolve().parent.parent / "format" / "SPEC.md").read_text()
    assert "indices `1, 3, 0` code to the one-byte segment `B8`" in spec and "`q = 12,058,624`" in spec
    freq = np.array([1 << 23, 1 << 22, 1 << 21, 1 << 21])
    assert entropy.encode_scale(np.array([1, 3, 0]), freq) == b"\xb8"
    assert spec_decode(b"\xb8", 3, freq.tolist()) == [1, 3, 0]
    assert (0xB8 << 56) // ((1 << 40) - 1) == 12_058_624


def test_extreme_tables_and_the_largest_codebook():
    freq = entropy.build_table(np.eye(1, 65536, 40000, dtype=np.int64)[0] * 10**9, 1 / 1024)
    assert freq[40000] >= entropy.TOTAL - 65536 and np.delete(freq, 40000).max() <= 2
    common = np.full(1000, 40000)
    assert len(entropy.encode_scale(common, freq)) <= 1  # 1000 near-certain symbols: 5.6 bits in all
    rare = np.arange(0, 65536, 97)
    data = entropy.encode_scale(rare, freq)
    assert 3 * len(rare) - 1 <= len(data) <= 3 * len(rare) + 8  # 24 bits per symbol of frequency 1
    assert np.array_equal(entropy.decode_scale(data, len(rare), freq), rare)


# --- the container ----------------------------------------------------------------------------------------------


@st.composite
def range_files(draw):
    freq, _ = draw(table_and_indices(max_k=300, max_n=1))  # scale 0's row; the others: sparse random counts
    size = len(freq)
    schedule = tuple(draw(st.lists(st.integers(1, 200), min_size=1, max_size=6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = [
        entropy.build_table(rng.integers(0, 50, size) * (rng.random(size) < 0.2), 0.1) for _ in schedule[1:]
    ]
    tables = np.stack([freq, *rows])
    present = draw(st.integers(1, len(schedule)))
    follow = draw(st.booleans())  # indices drawn from the tables, or uniform (many rare codes)
    indices = [
        rng.choice(size, n, p=tables[s] / entropy.TOTAL) if follow else rng.integers(0, size, n)
        for s, n in enumerate(schedule[:present])
    ]
    vat = bs.VatFile(
        model_id=draw(st.binary(min_size=8, max_size=8)),
        codebook_size=size,
        index_bits=bs.index_bits_for(size),
        schedule=schedule,
        indices=indices,
        coder="range",
        version=(1, 1),
    )
    return vat, tables


@FUZZ
@given(range_files())
def test_file_round_trip_and_header_info(case):
    vat, tables = case
    data = bs.pack(vat, tables=tables)
    back = bs.unpack(data, tables=tables)
    assert back == vat and all(a.dtype == np.int64 for a in back.indices)
    assert bs.pack(back, tables=tables) == data
    info = bs.header_info(data)  # no tables needed
    assert info["coder"] == "range" and info["scales_present"] == vat.num_scales
    assert len(info["scale_bytes"]) == vat.num_scales
    lengths = sum(len(bs.encode_varint(n)) for n in info["scale_bytes"][:-1])
    assert info["payload_bytes"] == sum(info["scale_bytes"]) + lengths


@FUZZ
@given(range_files())
def test_every_prefix_is_a_prefix_of_the_segments(case):
    """Progressive: a prefix file holds the same coded scales, so any prefix decodes without re-coding."""
    vat, tables = case
    full = bs.header_info(bs.pack(vat, tables=tables))["scale_bytes"]
    for n in range(1, vat.num_scales + 1):
        data = bs.pack(dataclasses.replace(vat, indices=vat.indices[:n]), tables=tables)
        assert bs.header_info(data)["scale_bytes"] == full[:n]
        back = bs.unpack(data, tables=tables)
        assert all(np.array_equal(a, b) for a, b in zip(back.indices, vat.indices[:n], strict=False))


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@functools.cache
def _sample_file() -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(3)
    counts = np.stack([np.bincount(rng.zipf(1.4, 3000) % 4096, minlength=4096) for _ in VAT_S_SCHEDULE])
    tables = entropy.build_tables(counts, 0.05)
    indices = [rng.choice(4096, n, p=tables[s] / entropy.TOTAL) for s, n in enumerate(VAT_S_SCHEDULE)]
    vat = bs.VatFile(bytes(8), 4096, 12, VAT_S_SCHEDULE, indices, coder="range", version=(1, 1))
    return bs.pack(vat, tables=tables), tables


@FUZZ
@given(st.data())
def test_corrupt_payload_with_fixed_crc_fails_cleanly_and_quickly(data):
    """Past the CRC, corrupt coded bytes give a BitstreamError (one line) or some valid indices: never a crash."""
    original, tables = _sample_file()
    body = bytearray(original[:-4])
    start = len(original) - 4 - bs.header_info(original)["payload_bytes"]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(start, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(start, len(body)))]
    mutated = _with_crc(bytes(body))
    t0 = time.perf_counter()
    try:
        vat = bs.unpack(mutated, tables=tables)
        assert all(((a >= 0) & (a < 4096)).all() for a in vat.indices)
    except BitstreamError as exc:
        assert "\n" not in str(exc) and str(exc)
    assert time.perf_counter() - t0 < 1.0


def test_corruption_is_caught_by_the_crc():
    data, tables = _sample_file()
    for bit in range(0, 8 * len(data), 7):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            bs.unpack(bytes(flipped), tables=tables)


def test_garbage_for_the_largest_schedule_is_bounded_work():
    """2**20 tokens claimed, 16 garbage bytes: the decoder stops after 2**20 symbols, or at the first bad one."""
    freq = entropy.build_table(np.arange(4096), 1.0)
    body = bytearray(bs.pack(bs.VatFile(bytes(8), 4096, 12, (1,), [np.array([5])], coder="range",
                                        version=(1, 1)), tables=freq[None])[:-4])  # fmt: skip
    # Fixed fields and codebook size, then: 1 scale of 2**20 tokens, 1 present, no extensions.
    head = bytes(body[:33]) + b"\x01" + bs.encode_varint(1 << 20) + b"\x01\x00"
    for garbage in (bytes(16), b"\xff" * 16, bytes(range(16))):
        t0 = time.perf_counter()
        try:
            vat = bs.unpack(_with_crc(head + garbage), tables=freq[None])
            assert len(vat.indices[0]) == 1 << 20
        except BitstreamError as exc:
            assert "corrupt range-coded payload" in str(exc)
        assert time.perf_counter() - t0 < 2.0


def test_range_needs_tables_of_the_right_shape():
    data, tables = _sample_file()
    with pytest.raises(BitstreamError, match="needs the entropy tables of model 0000000000000000"):
        bs.unpack(data)
    with pytest.raises(BitstreamError, match="shape"):
        bs.unpack(data, tables=tables[:5])
    vat = bs.unpack(data, tables=tables)
    with pytest.raises(BitstreamError, match="needs the model's entropy tables"):
        bs.pack(vat)


def test_coding_overhead_is_far_below_50_ms():
    """Issue target: coding + decoding a vat-s-sized file (655 tokens, 4096 codes) under 50 ms on CPU."""
    data, tables = _sample_file()
    vat = bs.unpack(data, tables=tables)
    best = 1.0
    for _ in range(5):
        t0 = time.perf_counter()
        bs.unpack(bs.pack(vat, tables=tables), tables=tables)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.05


# --- real files through the codec -------------------------------------------------------------------------------


def _meshes() -> list[trimesh.Trimesh]:
    box = trimesh.creation.box((1.0, 2.0, 0.5))
    torus = trimesh.creation.torus(2.0, 0.6, major_sections=24, minor_sections=12)
    torus.apply_translation((10.0, -3.0, 4.5))
    return [box, torus, trimesh.creation.icosphere(2), trimesh.creation.cylinder(0.5, 3.0)]


@pytest.fixture(scope="module")
def untabled():
    return tiny_model(0)


@pytest.fixture(scope="module")
def tables(untabled):
    cfg = untabled.cfg
    counts = np.zeros((len(cfg.schedule), cfg.codebook_size), dtype=np.int64)
    for mesh in _meshes():
        for s, a in enumerate(bs.unpack(codec.encode(mesh, model=untabled, coder="raw")).indices):
            counts[s] += np.bincount(a, minlength=cfg.codebook_size)
    return entropy.build_tables(counts, 0.25)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, untabled, tables):
    path = tmp_path_factory.mktemp("model") / "tiny-tables.safetensors"
    save_checkpoint(path, untabled, freq_SK=tables)
    return path


@pytest.fixture(scope="module")
def tabled(ckpt):
    return codec.get_model(ckpt)


def test_checkpoint_carries_the_tables(ckpt, tabled, untabled, tables):
    assert np.array_equal(tabled.entropy_freq_SK, tables)
    assert tabled.model_id == codec.model_id_of(untabled)  # the weights' id is unchanged by tables
    assert tabled.entropy_id == entropy.tables_id(tabled.model_id, tables)
    reloaded = load_model(ckpt)
    assert reloaded.entropy_id == tabled.entropy_id
    assert codec.tables_of(untabled) is None


def test_corrupt_tables_in_a_checkpoint_are_caught(ckpt, tmp_path, tables):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(ckpt), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(ckpt))
    changed = tables.copy()
    changed[0, :2] += (1, -1)  # still valid tables, but not the ones the id was computed from
    tensors[TABLES_KEY] = torch.from_numpy(changed.astype(np.int32))
    save_file(tensors, str(tmp_path / "a.safetensors"), metadata=metadata)
    with pytest.raises(VatError, match="entropy tables do not match"):
        load_model(tmp_path / "a.safetensors")
    changed[0, 0] += 5  # no longer sums to 2**24
    tensors[TABLES_KEY] = torch.from_numpy(changed.astype(np.int32))
    save_file(tensors, str(tmp_path / "b.safetensors"), metadata=metadata)
    with pytest.raises(VatError, match="entropy tables: .*summing"):
        load_model(tmp_path / "b.safetensors")


@pytest.mark.parametrize("index", range(4))
def test_real_file_round_trip_identical_tokens(tabled, index):
    mesh = _meshes()[index]
    raw = codec.encode(mesh, model=tabled, coder="raw")
    ranged = codec.encode(mesh, model=tabled, coder="range")
    assert bs.header_info(ranged)["format"] == "vat 1.1" and bs.header_info(raw)["format"] == "vat 1.0"
    decoded = bs.unpack(ranged, tables=tabled.entropy_freq_SK)
    assert all(np.array_equal(a, b) for a, b in zip(decoded.indices, bs.unpack(raw).indices, strict=True))
    assert len(ranged) < len(raw)  # the tables were counted on these shapes
    assert decoded.model_id == tabled.entropy_id
    auto = codec.encode(mesh, model=tabled)
    assert len(auto) == min(len(raw), len(ranged), len(codec.encode(mesh, model=tabled, coder="zstd")))


def test_real_file_decodes_and_is_deterministic(ckpt, tabled):
    mesh = _meshes()[1]
    first = codec.encode(mesh, model=tabled, coder="range")
    codec.clear_model_cache()
    assert codec.encode(mesh, model=ckpt, coder="range") == first  # a fresh load gives the same bytes
    out = codec.decode(first, model=tabled, resolution=32)
    same = codec.decode(codec.encode(mesh, model=tabled, coder="raw"), model=tabled, resolution=32)
    assert np.array_equal(out.vertices, same.vertices) and np.array_equal(out.faces, same.faces)


def test_real_file_prefixes(tabled):
    mesh = _meshes()[0]
    full = bs.unpack(codec.encode(mesh, model=tabled, coder="range"), tables=tabled.entropy_freq_SK)
    for n in range(1, len(tabled.cfg.schedule) + 1):
        data = codec.encode(mesh, model=tabled, coder="range", scales=n)
        vat = bs.unpack(data, tables=tabled.entropy_freq_SK)
        assert vat.num_scales == n
        assert all(np.array_equal(a, b) for a, b in zip(vat.indices, full.indices[:n], strict=False))
        assert codec.recode(codec.encode(mesh, model=tabled, coder="raw"), model=tabled, coder="range",
                            scales=n) == data  # fmt: skip
    assert len(codec.decode(data, model=tabled, scales=2, resolution=16).faces) > 0


def test_models_without_tables(untabled, tabled):
    mesh = _meshes()[2]
    with pytest.raises(VatError, match="needs entropy tables"):
        codec.encode(mesh, model=untabled, coder="range")
    assert bs.header_info(codec.encode(mesh, model=untabled)).get("coder") in ("raw", "zstd")
    # Raw/zstd files carry the weights' id: a model gaining tables keeps reading them, and vice versa.
    raw_old = codec.encode(mesh, model=untabled, coder="raw")
    assert raw_old == codec.encode(mesh, model=tabled, coder="raw")
    assert len(codec.decode(raw_old, model=tabled, resolution=16).faces) > 0
    ranged = codec.encode(mesh, model=tabled, coder="range")
    with pytest.raises(VatError, match="has no entropy tables") as info:
        codec.decode(ranged, model=untabled, resolution=16)
    assert "\n" not in str(info.value)


def test_range_file_with_other_tables_is_a_model_mismatch(untabled, tabled, tables):
    other = set_entropy_tables(tiny_model(0), entropy.build_tables(np.ones_like(tables), 1.0))
    ranged = codec.encode(_meshes()[0], model=tabled, coder="range")
    with pytest.raises(VatError, match="model id mismatch"):
        codec.decode(ranged, model=other, resolution=16)
    assert set_entropy_tables(other, None).entropy_id is None


# --- training.token_stats on a tiny synthetic cache -------------------------------------------------------------


def _write_cache(root, meshes: list[trimesh.Trimesh], splits: list[str]) -> None:
    from training.data import INDEX_NAME, write_shard

    samples = []
    for mesh in meshes:
        mesh = mesh.copy()
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
        mesh.apply_scale(1.0 / mesh.extents.max())
        pts, face = trimesh.sample.sample_surface(mesh, 1024, seed=0)
        q = np.zeros((16, 3), dtype=np.float32)
        samples.append({"surface_points": pts, "surface_normals": mesh.face_normals[face], "query_points": q,
                        "query_sdf": np.zeros(16, dtype=np.float32)})  # fmt: skip
    root.mkdir(parents=True)
    write_shard(root / "shard-00000.safetensors", samples)
    shapes = [
        {"name": f"s{i}", "shard": "shard-00000.safetensors", "row": i, "split": s}
        for i, s in enumerate(splits)
    ]
    (root / INDEX_NAME).write_text(json.dumps({"n_uniform": 8, "shapes": shapes}))


def test_token_stats_writes_a_checkpoint_with_tables(tmp_path, untabled, capsys):
    from training import token_stats

    src, out = tmp_path / "m.safetensors", tmp_path / "m-tables.safetensors"
    ident = save_checkpoint(src, untabled)
    _write_cache(tmp_path / "cache", _meshes(), ["train", "train", "train", "val"])
    assert token_stats.main(["--checkpoint", str(src), "--data", str(tmp_path / "cache"), "--out", str(out),
                             "--batch-size", "2"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["shapes"] == 3 and report["val_shapes"] == 1 and len(report["alphas"]) == 4
    net = load_model(out)
    assert net.model_id == ident and net.entropy_id.hex() == report["range_model_id"]
    assert entropy.check_tables(net.entropy_freq_SK, 4, 256).shape == (4, 256)
    data = codec.encode(_meshes()[0], model=net, coder="range")
    assert len(data) < len(codec.encode(_meshes()[0], model=net, coder="raw"))


def test_choose_alphas_prefers_the_smoothing_that_fits_validation():
    from training.token_stats import choose_alphas

    train = np.array([[100, 0, 0, 0], [10, 10, 0, 0]])
    same = np.array([[50, 0, 0, 0], [5, 5, 0, 0]])  # nothing unseen: the least smoothing wins
    unseen = np.array([[10, 10, 10, 10], [0, 0, 5, 5]])  # mostly unseen codes: the most smoothing wins
    assert choose_alphas(train, same) == [2.0**-8] * 2
    assert choose_alphas(train, unseen) == [4.0] * 2
    assert choose_alphas(train, None) == [1.0, 1.0]


def test_a_model_without_tables_has_no_range_coded_id():
    """Asking which model wrote a range-coded file must not crash on a model that has no tables (the bench's
    writer lookup over several models, session 19): it is a VatError, as for the context coder without a prior."""
    from tests.conftest import tiny_model
    from vatcodec.codec.models import file_model_id, model_id_of, tables_of
    from vatcodec.errors import VatError

    net = tiny_model()
    assert tables_of(net) is None
    with pytest.raises(VatError, match="no entropy tables"):
        file_model_id(net, "range")
    assert file_model_id(net, "zstd") == model_id_of(net)
