"""The Python codec API on a small random checkpoint: round trips, determinism, prefixes, byte budgets, errors."""

import numpy as np
import pytest
import torch
import trimesh
from conftest import tiny_model

import vatcodec
from vatcodec import codec
from vatcodec.codec import models as codec_models
from vatcodec.codec.bitstream import pack, unpack
from vatcodec.errors import BitstreamError, MeshError, VatError
from vatcodec.model.checkpoint import save_checkpoint

RES = 32  # decode resolution for tests: the random model's shape is noise anyway


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(path, tiny_model(0))
    return path


@pytest.fixture(scope="module")
def model(ckpt):
    return codec.get_model(ckpt)


def shape() -> trimesh.Trimesh:
    """A torus away from the origin and not unit-sized, so the normalization has work to do."""
    mesh = trimesh.creation.torus(2.0, 0.6, major_sections=24, minor_sections=12)
    mesh.apply_translation((10.0, -3.0, 4.5))
    return mesh


def test_public_api_is_exported():
    assert vatcodec.encode is codec.encode and vatcodec.decode is codec.decode


def test_round_trip(model):
    mesh = shape()
    data = codec.encode(mesh, model=model)
    vat = unpack(data)
    cfg = model.cfg
    assert vat.model_id == model.model_id and vat.codebook_size == cfg.codebook_size
    assert vat.schedule == cfg.schedule and vat.num_scales == len(cfg.schedule)
    lo, hi = mesh.bounds
    np.testing.assert_allclose(vat.center, (lo + hi) / 2, rtol=1e-6)
    assert vat.scale == pytest.approx((hi - lo).max(), rel=1e-6)
    out = codec.decode(data, model=model, resolution=RES)
    assert isinstance(out, trimesh.Trimesh) and len(out.faces) > 0
    # The random shape still lies in the normalized cube, mapped back around the torus.
    assert np.all(out.bounds[0] >= np.asarray(vat.center) - 0.53 * vat.scale)
    assert np.all(out.bounds[1] <= np.asarray(vat.center) + 0.53 * vat.scale)


def test_encoding_is_deterministic(ckpt, model, tmp_path):
    mesh = shape()
    first = codec.encode(mesh, model=model)
    codec.clear_model_cache()  # a fresh load of the checkpoint must give the same bytes
    assert codec.encode(mesh, model=ckpt) == first
    path = tmp_path / "torus.ply"
    mesh.export(path)
    assert codec.encode(path, model=model) == codec.encode(path, model=model)
    assert codec.encode(mesh, model=model, seed=1) != first  # the sampling seed does matter


def test_every_prefix_encodes_and_decodes(model):
    mesh = shape()
    full = codec.encode(mesh, model=model, coder="raw")
    sizes = []
    for n in range(1, len(model.cfg.schedule) + 1):
        data = codec.encode(mesh, model=model, scales=n, coder="raw")
        vat = unpack(data)
        assert vat.num_scales == n
        assert all(np.array_equal(a, b) for a, b in zip(vat.indices, unpack(full).indices[:n], strict=False))
        sizes.append(len(data))
        decoded = codec.decode(data, model=model, resolution=RES)
        from_full = codec.decode(full, model=model, scales=n, resolution=RES)
        np.testing.assert_array_equal(decoded.faces, from_full.faces)
        np.testing.assert_allclose(decoded.vertices, from_full.vertices)
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    # Asking for more scales than the file has decodes what it has.
    few = codec.encode(mesh, model=model, scales=2)
    more = codec.decode(few, model=model, scales=4, resolution=RES)
    np.testing.assert_array_equal(more.faces, codec.decode(few, model=model, resolution=RES).faces)


def test_max_bytes_keeps_the_largest_prefix_that_fits(model):
    mesh = shape()
    sizes = [len(codec.encode(mesh, model=model, scales=n)) for n in range(1, 5)]
    for n, size in enumerate(sizes, start=1):
        data = codec.encode(mesh, model=model, max_bytes=size)
        assert len(data) <= size and unpack(data).num_scales >= n
        if n < 4 and sizes[n] > size:
            assert unpack(codec.encode(mesh, model=model, max_bytes=sizes[n] - 1)).num_scales == n
    capped = codec.encode(mesh, model=model, max_bytes=10_000, scales=2)
    assert unpack(capped).num_scales == 2
    with pytest.raises(VatError, match=f"smallest file .1 scale. takes {sizes[0]} bytes"):
        codec.encode(mesh, model=model, max_bytes=sizes[0] - 1)


def test_auto_coder_picks_the_smaller(model):
    mesh = shape()
    raw, zstd = (codec.encode(mesh, model=model, coder=c) for c in ("raw", "zstd"))
    assert unpack(raw).coder == "raw" and unpack(zstd).coder == "zstd"
    assert len(codec.encode(mesh, model=model)) == min(len(raw), len(zstd))


def test_model_id_mismatch_names_both_ids(model, tmp_path):
    torch.manual_seed(1)
    other_path = tmp_path / "other.safetensors"
    save_checkpoint(other_path, tiny_model(1))
    other = codec.get_model(other_path)
    data = codec.encode(shape(), model=model)
    with pytest.raises(VatError) as info:
        codec.decode(data, model=other, resolution=RES)
    message = str(info.value)
    assert model.model_id.hex() in message and other.model_id.hex() in message and "\n" not in message


def test_model_in_memory_gets_its_checkpoint_id(ckpt, model):
    fresh = tiny_model(0)  # same weights as the checkpoint, never saved
    assert codec.encode(shape(), model=fresh) == codec.encode(shape(), model=model)


class SphereDecoder:
    """The test model's encoder and id, with a known decoded shape: the sphere inscribed in the unit cube."""

    def __init__(self, model):
        self.cfg, self.model_id, self.encode = model.cfg, model.model_id, model.encode

    def decode(self, indices):
        return lambda p: 0.45 - p.norm(dim=-1)


def test_decoded_mesh_lands_in_the_original_place_and_size(model):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    sphere.apply_translation((-20.0, 7.0, 3.0))
    data = codec.encode(sphere, model=model)
    out = codec.decode(data, model=SphereDecoder(model), resolution=48)
    # The unit cube is the sphere's bounding box (side 10), so a radius 0.45 ball comes back as radius 4.5.
    radii = np.linalg.norm(out.vertices - (-20.0, 7.0, 3.0), axis=1)
    assert np.abs(radii - 4.5).max() < 0.05
    assert out.is_watertight or trimesh.Trimesh(out.vertices, out.faces).is_watertight


def test_faces_decimates(model):
    data = codec.encode(shape(), model=model)
    sphere = SphereDecoder(model)
    full = codec.decode(data, model=sphere, resolution=RES)
    small = codec.decode(data, model=sphere, resolution=RES, faces=300)
    assert len(full.faces) > 1000 and 0 < len(small.faces) <= 300
    np.testing.assert_allclose(small.bounds, full.bounds, atol=0.05 * full.scale)


def test_bad_inputs_are_one_line_errors(model, tmp_path):
    for bad in (dict(scales=0), dict(scales=5), dict(max_bytes=0), dict(coder="lzma")):
        with pytest.raises(VatError):
            codec.encode(shape(), model=model, **bad)
    with pytest.raises(MeshError, match="not found"):
        codec.encode(tmp_path / "missing.obj", model=model)
    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], process=False)
    with pytest.raises(MeshError, match="zero total surface area"):
        codec.encode(flat, model=model)
    with pytest.raises(TypeError):
        codec.encode(np.zeros((3, 3)), model=model)
    data = codec.encode(shape(), model=model)
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0x40
    with pytest.raises(BitstreamError, match="CRC"):
        codec.decode(bytes(corrupt), model=model)
    with pytest.raises(BitstreamError):
        codec.decode(b"solid cube\n", model=model)
    for bad in (dict(resolution=4), dict(resolution=4096), dict(scales=0), dict(faces=0)):
        with pytest.raises(VatError):
            codec.decode(data, model=model, **bad)


def test_file_with_a_foreign_schedule_is_rejected(model):
    vat = unpack(codec.encode(shape(), model=model))
    vat.schedule = vat.schedule + (25,)
    with pytest.raises(BitstreamError, match="schedule"):
        codec.decode(pack(vat), model=model)


def test_default_model(monkeypatch, tmp_path, ckpt):
    monkeypatch.setattr(codec_models, "default_model_path", lambda: tmp_path / "vat-s.safetensors")
    with pytest.raises(VatError, match="default model is missing"):
        codec.encode(shape())
    (tmp_path / "vat-s.safetensors").write_bytes(ckpt.read_bytes())
    assert codec.get_model() is codec.get_model()  # loaded once
    assert unpack(codec.encode(shape())).model_id == codec.get_model(ckpt).model_id


def test_encode_many_skips_the_bad_file(model, tmp_path):
    good = tmp_path / "good.ply"
    shape().export(good)
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    out = tmp_path / "out"
    out.mkdir()
    results = {r.source: r for r in codec.encode_many([good, bad, tmp_path / "gone.stl"], out, model=model)}
    assert len(results) == 3
    assert results[str(good)].ok and (out / "good.vat").read_bytes() == codec.encode(good, model=model)
    assert "NaN" in results[str(bad)].error and not results[str(bad)].ok
    assert "not found" in results[str(tmp_path / "gone.stl")].error
    assert sorted(p.name for p in out.iterdir()) == ["good.vat"]
    with pytest.raises(VatError, match="both be written"):
        list(codec.encode_many([good, tmp_path / "x" / "good.obj"], out, model=model))
