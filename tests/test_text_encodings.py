"""Text mesh files load whatever their text encoding: UTF-8 (with or without BOM), cp1252/Latin-1, UTF-16 + BOM."""

import codecs
import json

import numpy as np
import pytest
import trimesh

from vatcodec.errors import MeshError
from vatcodec.geometry.mesh_io import load_mesh
from vatcodec.geometry.text_encoding import TextEncodingError, to_utf8

TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5]])


def obj_text() -> str:
    rows = "".join(f"v {x} {y} {z}\n" for x, y, z in TRIANGLE)
    return f"# chaise en bois d'érable, «café»\no siège_é\nusemtl bois_é\n{rows}f 1 2 3\n"


def ply_text() -> str:
    rows = "".join(f"{x} {y} {z}\n" for x, y, z in TRIANGLE)
    return (
        "ply\nformat ascii 1.0\ncomment modèle «café»\nelement vertex 3\nproperty float x\nproperty float y\n"
        f"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n{rows}3 0 1 2\n"
    )


def off_text() -> str:
    rows = "".join(f"{x} {y} {z}\n" for x, y, z in TRIANGLE)
    return f"OFF\n3 1 0\n{rows}3 0 1 2\n"


def stl_text() -> str:
    rows = "".join(f"vertex {x} {y} {z}\n" for x, y, z in TRIANGLE)
    return f"solid chaise_é\nfacet normal 0 0 1\nouter loop\n{rows}endloop\nendfacet\nendsolid chaise_é\n"


def gltf_text() -> str:
    mesh = trimesh.Trimesh(TRIANGLE, [[0, 1, 2]], process=False)
    files = trimesh.exchange.gltf.export_gltf(trimesh.Scene(mesh), embed_buffers=True)
    doc = json.loads(files["model.gltf"])
    doc["asset"]["copyright"] = "Atelier «Chaise» – café"
    doc["meshes"][0]["name"] = "siège"
    return json.dumps(doc, ensure_ascii=False)


FORMATS = {".obj": obj_text, ".ply": ply_text, ".off": off_text, ".stl": stl_text, ".gltf": gltf_text}
ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8-bom": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "cp1252": lambda t: t.encode("cp1252"),
    "latin-1": lambda t: t.replace("«", "<").replace("»", ">").replace("–", "-").encode("latin-1"),
    "utf-16-le-bom": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16-be-bom": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_text_mesh_loads_in_every_encoding(tmp_path, suffix, encoding):
    text = FORMATS[suffix]()
    if suffix == ".off":
        text = "# modèle «café»\n" + text if encoding != "utf-8" else text
    path = tmp_path / f"m{suffix}"
    path.write_bytes(ENCODINGS[encoding](text))
    mesh = load_mesh(path)
    assert len(mesh.faces) == 1
    np.testing.assert_allclose(np.asarray(mesh.vertices)[mesh.faces[0]], TRIANGLE, atol=1e-6)


def test_binary_ply_with_a_latin1_header_comment_keeps_its_body(tmp_path):
    mesh = trimesh.Trimesh(TRIANGLE, [[0, 1, 2]], process=False)
    data = mesh.export(file_type="ply")
    assert b"binary" in data
    data = data.replace(b"ply\n", "ply\ncomment modèle café\n".encode("latin-1"), 1)
    path = tmp_path / "m.ply"
    path.write_bytes(data)
    np.testing.assert_allclose(load_mesh(path).vertices, TRIANGLE, atol=1e-6)


def test_undecodable_text_is_a_one_line_error(tmp_path):
    path = tmp_path / "m.obj"
    path.write_bytes(obj_text().encode("cp1252").replace(b"\xe9", b"\x81"))
    with pytest.raises(MeshError) as err:
        load_mesh(path)
    message = str(err.value)
    assert "cannot decode" in message and "0x81" in message and "\n" not in message
    with pytest.raises(TextEncodingError, match="UTF-16"):
        to_utf8(codecs.BOM_UTF16_LE + "v 0 0 0\n".encode("utf-16-le") + b"\x00\xd8")  # a lone surrogate


def test_cli_encodes_a_latin1_obj(tmp_path):
    from conftest import tiny_model
    from typer.testing import CliRunner

    from vatcodec.cli import app
    from vatcodec.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    src = tmp_path / "chaise.obj"
    box = trimesh.creation.box()
    rows = "".join(f"v {x} {y} {z}\n" for x, y, z in box.vertices)
    faces = "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in box.faces)
    src.write_bytes(f"# chaise «café»\nusemtl érable\n{rows}{faces}".encode("cp1252"))
    result = CliRunner().invoke(
        app, ["encode", str(src), "-o", str(tmp_path / "c.vat"), "--model", str(ckpt)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.vat").stat().st_size > 0
