"""Files of every shipped tokenizer decode with no --model: the package finds the model whose id the file carries."""

import shutil

import pytest
import torch
import trimesh
from conftest import tiny_model

from vatcodec import codec
from vatcodec.codec import models as codec_models
from vatcodec.codec.bitstream import header_info
from vatcodec.errors import VatError
from vatcodec.model.checkpoint import save_checkpoint


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A weights folder with two tokenizers, `a` the default, and a file written by each."""
    folder = tmp_path / "weights"
    folder.mkdir()
    save_checkpoint(folder / "a.safetensors", tiny_model(0))
    save_checkpoint(folder / "b.safetensors", tiny_model(1))
    (folder / "notes.safetensors").write_bytes(b"not a checkpoint")
    monkeypatch.setattr(codec_models, "weights_dir", lambda: folder)
    monkeypatch.setattr(codec_models, "DEFAULT_MODEL_NAME", "a.safetensors")
    codec_models.clear_model_cache()
    mesh = trimesh.creation.torus(1.0, 0.3)
    files = {k: codec.encode(mesh, model=folder / f"{k}.safetensors") for k in "ab"}
    yield folder, files
    codec_models.clear_model_cache()


def test_each_file_finds_its_own_shipped_model(weights):
    folder, files = weights
    ids = {k: header_info(v)["model_id"] for k, v in files.items()}
    assert ids["a"] != ids["b"]
    assert codec_models.bundled_model_for(ids["a"]) == folder / "a.safetensors"
    assert codec_models.bundled_model_for(ids["b"]) == folder / "b.safetensors"
    assert codec_models.bundled_model_for("0" * 16) is None
    for k in "ab":
        mesh = codec.decode(files[k], resolution=24)  # no model given
        want = codec.decode(files[k], model=folder / f"{k}.safetensors", resolution=24)
        assert torch.equal(torch.as_tensor(mesh.vertices), torch.as_tensor(want.vertices))


def test_batch_decode_resolves_per_file(weights, tmp_path):
    _, files = weights
    paths = []
    for k, data in files.items():
        paths.append(tmp_path / f"{k}.vat")
        paths[-1].write_bytes(data)
    (tmp_path / "out").mkdir()
    results = list(codec.decode_many(paths, tmp_path / "out", resolution=24))
    assert all(r.error is None for r in results), [r.error for r in results]


def test_an_unknown_model_still_names_both_ids(weights, tmp_path):
    folder, files = weights
    shutil.move(folder / "b.safetensors", tmp_path / "b.safetensors")
    codec_models.clear_model_cache()
    with pytest.raises(VatError, match="model id mismatch"):
        codec.decode(files["b"], resolution=24)


@pytest.mark.parametrize(
    "name",
    sorted(p.stem for p in codec_models.weights_dir().glob("vat-*.safetensors") if "prior" not in p.stem),
)
def test_every_bundled_tokenizer_is_found_by_its_files(name):
    """Each shipped tokenizer (the default, the earlier ones and those for --also-model) writes files that decode
    with no --model, to what its own model decodes."""
    from test_learning_table import table_mesh

    data = codec.encode(table_mesh(), model=name, max_bytes=1024)
    assert codec.bundled_model_for(header_info(data)["model_id"]).stem == name
    a, b = codec.decode(data, resolution=32), codec.decode(data, model=name, resolution=32)
    assert len(a.faces) > 0 and (a.vertices == b.vertices).all()
