"""Per-file surface level (bitstream extension 2): container checks, decode applies it, encode chooses it."""

import dataclasses

import numpy as np
import pytest
from test_learning_table import table_mesh

from vatcodec import codec
from vatcodec.codec import effort, level, quick_score
from vatcodec.codec.bitstream import (
    EXT_FSCORE,
    EXT_LEVEL,
    LEVEL_UNIT,
    VatFile,
    header_info,
    level_extension,
    level_offset,
    pack,
    unpack,
)
from vatcodec.errors import BitstreamError
from vatcodec.geometry.mesh_io import normalize_mesh

RES = 64


def small_file(extensions: dict) -> VatFile:
    return VatFile(
        model_id=b"\x01" * 8,
        codebook_size=16,
        index_bits=4,
        schedule=(1, 4),
        indices=[np.array([3]), np.array([1, 2, 3, 4])],
        extensions=extensions,
        version=(1, 2),
    )


def test_level_extension_round_trips_and_is_checked():
    assert level_extension(0) == {}
    for steps in (-128, -3, 5, 127):
        vat = unpack(pack(small_file(level_extension(steps))))
        assert level_offset(vat) == steps * LEVEL_UNIT
        assert header_info(pack(vat))["level_offset"] == steps * LEVEL_UNIT
    assert level_offset(unpack(pack(small_file({})))) == 0.0
    assert "level_offset" not in header_info(pack(small_file({})))
    with pytest.raises(BitstreamError, match="surface-level offset"):
        level_extension(128)
    with pytest.raises(BitstreamError, match=r"extension 2 \(surface level\) must be 1 byte"):
        pack(small_file({EXT_LEVEL: b"\x01\x02"}))


@pytest.fixture(scope="module")
def table():
    """A top plate on four thin legs: the legs surface below the model's level (a search picks 2 steps down)."""
    return table_mesh()


@pytest.fixture(scope="module")
def plain(table):
    """The table at effort 0 without a level search: the model's own surface level (range-coded: the files of this
    module compare sizes and versions, which the context coder's would not keep)."""
    return codec.encode(table, level_search=False, coder="range")


@pytest.fixture(autouse=True)
def quick_search(monkeypatch):
    """The search's quick F-scores at 64 instead of 128: the same choice for this table, at a quarter of the time."""
    monkeypatch.setattr(level, "LEVEL_RESOLUTION", 64)


def with_level(data: bytes, steps: int) -> bytes:
    net = codec.get_model()
    vat = unpack(data, tables=codec.tables_of(net))
    return codec.pack_smallest(dataclasses.replace(vat, extensions=level_extension(steps)), "range", net)


def test_decode_applies_the_level_to_the_full_stream_only(plain):
    assert header_info(plain)["format"] == "vat 1.1"  # no extension: the file needs no newer reader
    higher = with_level(plain, 6)  # 0.375 logit above the model's level: a thinner shape
    assert header_info(higher)["format"] == "vat 1.2"
    a, b = codec.decode(plain, resolution=RES), codec.decode(higher, resolution=RES)
    assert b.area < 0.97 * a.area
    n = header_info(plain)["scales_present"]
    a, b = (
        codec.decode(plain, resolution=RES, scales=n - 1),
        codec.decode(higher, resolution=RES, scales=n - 1),
    )
    assert np.array_equal(a.vertices, b.vertices)  # a prefix decodes at the model's level for that prefix
    # Cutting scales drops the level (it was chosen for the full stream); keeping them keeps it.
    assert (
        EXT_LEVEL
        not in unpack(
            codec.recode(higher, scales=n - 1, coder="range"), tables=codec.tables_of(codec.get_model())
        ).extensions
    )
    assert header_info(codec.recode(higher, coder="range"))["level_offset"] == 6 * LEVEL_UNIT


def test_search_stores_the_level_that_decodes_best(table, plain):
    net = codec.get_model()
    unit, _ = normalize_mesh(table)
    leveled = codec.encode(table, level_search=True, coder="range")
    steps = round(header_info(leveled).get("level_offset", 0.0) / LEVEL_UNIT)
    assert steps == codec.choose_level(net, unpack(plain, tables=codec.tables_of(net)).indices, unit)
    assert steps < 0  # the thin legs surface below the model's level (else this test shows nothing)
    idx = unpack(plain, tables=codec.tables_of(net)).indices
    scores = {k: effort.fscore_proxy(net, idx, unit, RES, level=k * LEVEL_UNIT) for k in (-4, 0, 4, steps)}
    assert scores[steps] == max(scores.values()) and scores[steps] > scores[0]
    assert codec.encode(table, level_search=True, coder="range") == leveled  # deterministic
    assert (
        EXT_LEVEL not in unpack(codec.encode(table, coder="range"), tables=codec.tables_of(net)).extensions
    )  # effort 0: off
    # A budget that the plain file exactly fills has no room for the 3 bytes: the plain file is written.
    assert codec.encode(table, level_search=True, max_bytes=len(plain), coder="range") == plain
    assert len(leveled) == len(plain) + 3
    assert EXT_FSCORE not in unpack(leveled, tables=codec.tables_of(net)).extensions


def test_cli_writes_and_shows_the_level(tmp_path, table, plain):
    from typer.testing import CliRunner

    from vatcodec.cli import app

    src, out = tmp_path / "table.obj", tmp_path / "table.vat"
    table.export(src)
    runner = CliRunner()
    result = runner.invoke(app, ["encode", str(src), "-o", str(out), "--level-search"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["info", str(out)])
    assert shown.exit_code == 0 and "surface level" in shown.output and "-0.125" in shown.output
    result = runner.invoke(app, ["encode", str(src), "-o", str(out), "--no-level-search", "--effort", "0"])
    assert result.exit_code == 0 and "surface level" not in runner.invoke(app, ["info", str(out)]).output


def test_search_past_its_deadline_keeps_the_best_level_scored(table, plain, monkeypatch):
    net = codec.get_model()
    unit, _ = normalize_mesh(table)
    idx = unpack(plain, tables=codec.tables_of(net)).indices
    scored = []
    extract = quick_score.extract_mesh
    monkeypatch.setattr(
        quick_score, "extract_mesh", lambda *a, **k: scored.append(k["level"]) or extract(*a, **k)
    )
    assert level.choose_level(net, idx, unit, RES, deadline=0.0) == 0  # past it: only the model's level
    assert scored == [0.0]
    scored.clear()
    full = level.choose_level(net, idx, unit, RES)
    assert len(scored) >= len(level.LEVEL_COARSE) + 2 and full < 0  # no deadline: the whole search
