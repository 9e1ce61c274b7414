"""Tests for mesh loading, validation, normalization and saving on small synthetic files."""

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh

from vatcodec.errors import MeshError, VatError
from vatcodec.geometry.mesh_io import (
    Normalization,
    load_mesh,
    normalize_mesh,
    save_mesh,
    validate_mesh,
)

TRIANGLE_V = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
PLY_HEADER = (
    "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def load_error(path) -> str:
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_mesh_error_is_a_vat_error():
    assert issubclass(MeshError, VatError)


def test_missing_file(tmp_path):
    assert "not found" in load_error(tmp_path / "nope.obj")


def test_directory_is_rejected(tmp_path):
    folder = tmp_path / "chair.obj"
    folder.mkdir()
    assert "directory" in load_error(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without permission bits")
def test_unreadable_permissions(tmp_path):
    path = write(tmp_path, "locked.obj", TRIANGLE_V + "f 1 2 3\n")
    path.chmod(0)
    assert "cannot read" in load_error(path)


def test_unknown_suffix(tmp_path):
    path = write(tmp_path, "chair.fbx", TRIANGLE_V + "f 1 2 3\n")
    assert "unknown mesh format '.fbx'" in load_error(path)


def test_garbage_bytes_in_text_format(tmp_path):
    path = write(tmp_path, "junk.obj", bytes(range(256)) * 8)
    assert "cannot parse" in load_error(path)


def test_garbage_binary_ply_is_wrapped(tmp_path):
    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n"
    path = write(tmp_path, "junk.ply", header + bytes(range(256)))
    assert "cannot parse" in load_error(path)


def test_point_cloud_has_no_faces(tmp_path):
    assert "no triangle faces" in load_error(write(tmp_path, "points.obj", TRIANGLE_V))


def test_empty_file_has_no_faces(tmp_path):
    assert "no triangle faces" in load_error(write(tmp_path, "empty.obj", ""))


def test_nan_coordinates(tmp_path):
    path = write(tmp_path, "nan.obj", "v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    assert "NaN or infinite" in load_error(path)


def test_inf_coordinates_in_stl(tmp_path):
    stl = (
        "solid s\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\n"
        "vertex inf 1 0\nendloop\nendfacet\nendsolid s\n"
    )
    assert "NaN or infinite" in load_error(write(tmp_path, "inf.stl", stl))


def test_face_index_out_of_range_ply(tmp_path):
    path = write(tmp_path, "oor.ply", PLY_HEADER + "0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n")
    assert "face indices out of range" in load_error(path)


def test_negative_face_index_ply(tmp_path):
    path = write(tmp_path, "neg.ply", PLY_HEADER + "0 0 0\n1 0 0\n0 1 0\n3 0 1 -1\n")
    assert "face indices out of range" in load_error(path)


def test_face_index_out_of_range_obj_is_wrapped(tmp_path):
    path = write(tmp_path, "oor.obj", TRIANGLE_V + "f 1 2 7\n")
    assert "cannot parse" in load_error(path)


def test_zero_area(tmp_path):
    path = write(tmp_path, "line.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    assert "zero total surface area" in load_error(path)


def test_zero_extent(tmp_path):
    path = write(tmp_path, "dot.obj", "v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")
    assert "zero extent" in load_error(path)


def test_flat_mesh_is_valid(tmp_path):
    quad = "v 0 0 0\nv 2 0 0\nv 2 1 0\nv 0 1 0\nf 1 2 3\nf 1 3 4\n"
    mesh = load_mesh(write(tmp_path, "quad.obj", quad))
    assert len(mesh.faces) == 2
    unit, norm = normalize_mesh(mesh)
    assert norm.scale == pytest.approx(2.0)
    assert np.ptp(unit.vertices, axis=0) == pytest.approx([1.0, 0.5, 0.0])


def test_validate_mesh_in_memory_out_of_range():
    mesh = trimesh.Trimesh(np.eye(3), [[0, 1, 5]], process=False, validate=False)
    with pytest.raises(MeshError, match="out of range"):
        validate_mesh(mesh)


def test_missing_material_and_texture_is_harmless(tmp_path):
    obj = "mtllib gone.mtl\nusemtl wood\n" + "vt 0 0\nvt 1 0\nvt 0 1\n" + TRIANGLE_V
    obj += "f 1/1 2/2 3/3\n"
    write(tmp_path, "other.mtl", "newmtl wood\nmap_Kd missing_texture.jpg\n")
    mesh = load_mesh(write(tmp_path, "tex.obj", obj))
    assert len(mesh.faces) == 1


def test_multi_part_obj_is_one_mesh(tmp_path):
    obj = "mtllib m.mtl\n"
    write(tmp_path, "m.mtl", "newmtl a\nKd 1 0 0\nnewmtl b\nKd 0 1 0\nmap_Kd none.png\n")
    for k, (name, mat) in enumerate([("seat", "a"), ("leg", "b"), ("back", "a")]):
        z = float(k)
        obj += f"o {name}\nusemtl {mat}\nv 0 0 {z}\nv 1 0 {z}\nv 0 1 {z}\n"
        obj += f"f {3 * k + 1} {3 * k + 2} {3 * k + 3}\n"
    mesh = load_mesh(write(tmp_path, "parts.obj", obj))
    assert isinstance(mesh, trimesh.Trimesh)
    assert len(mesh.faces) == 3
    assert sorted(np.unique(mesh.vertices[:, 2])) == [0.0, 1.0, 2.0]


def test_scene_transforms_are_applied(tmp_path):
    a = trimesh.creation.box()
    b = trimesh.creation.box()
    scene = trimesh.Scene()
    scene.add_geometry(a, node_name="a")
    scene.add_geometry(b, node_name="b", transform=trimesh.transformations.translation_matrix([5, 0, 0]))
    path = tmp_path / "scene.glb"
    path.write_bytes(scene.export(file_type="glb"))
    mesh = load_mesh(path)
    assert len(mesh.faces) == 24
    assert mesh.bounds[:, 0] == pytest.approx([-0.5, 5.5])


def test_normalization_roundtrip_and_unit_cube():
    mesh = trimesh.creation.box(extents=[2.0, 4.0, 1.0])
    mesh.apply_translation([10.0, -3.0, 7.0])
    unit, norm = normalize_mesh(mesh)
    assert norm.center == pytest.approx((10.0, -3.0, 7.0))
    assert norm.scale == pytest.approx(4.0)
    assert unit.bounds == pytest.approx(np.array([[-0.25, -0.5, -0.125], [0.25, 0.5, 0.125]]))
    back = norm.from_unit(unit.vertices)
    np.testing.assert_allclose(back, mesh.vertices, atol=1e-12)
    np.testing.assert_allclose(norm.to_unit(mesh.vertices), unit.vertices, atol=1e-12)


def test_normalization_is_frozen():
    norm = Normalization(center=(0.0, 0.0, 0.0), scale=1.0)
    with pytest.raises(AttributeError):
        norm.scale = 2.0


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".glb", ".off"])
def test_save_and_reload(tmp_path, suffix):
    mesh = trimesh.creation.icosphere(subdivisions=1)
    path = tmp_path / f"sphere{suffix}"
    save_mesh(mesh, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    back = load_mesh(path)
    assert back.area == pytest.approx(mesh.area, rel=1e-5)
    assert back.bounds == pytest.approx(mesh.bounds, abs=1e-5)


def test_save_unknown_suffix(tmp_path):
    with pytest.raises(MeshError, match="cannot save"):
        save_mesh(trimesh.creation.box(), tmp_path / "box.fbx")


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(VatError, match="cannot write .*does not exist"):
        save_mesh(trimesh.creation.box(), tmp_path / "nowhere" / "box.obj")


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "m.obj"
    save_mesh(trimesh.creation.box(), path)
    save_mesh(trimesh.creation.icosphere(subdivisions=0), path)
    assert len(load_mesh(path).faces) == 20


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off", ".stl", ".glb"])
def test_meshes_over_the_face_limit_are_refused_with_the_option_to_raise_it(tmp_path, suffix):
    from vatcodec.geometry.mesh_write import write_mesh

    torus = trimesh.creation.torus(1.0, 0.3, major_sections=16, minor_sections=8)  # 256 faces
    path = tmp_path / f"t{suffix}"
    write_mesh(torus.vertices, torus.faces, path)
    with pytest.raises(MeshError, match=r"has 256 faces, more than the limit of 100 .*--max-faces"):
        load_mesh(path, max_faces=100)
    assert len(load_mesh(path, max_faces=256).faces) == 256
    assert len(load_mesh(path, max_faces=None).faces) == 256


def test_cli_max_faces(tmp_path):
    from conftest import tiny_model
    from typer.testing import CliRunner

    from vatcodec.cli import EXIT_USER_ERROR, app
    from vatcodec.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    src = tmp_path / "t.obj"
    trimesh.creation.torus(1.0, 0.3, major_sections=16, minor_sections=8).export(src)
    out = tmp_path / "t.vat"
    args = ["encode", str(src), "-o", str(out), "--model", str(ckpt)]
    result = CliRunner().invoke(app, [*args, "--max-faces", "100"])
    assert result.exit_code == EXIT_USER_ERROR and "--max-faces" in result.stderr and not out.exists()
    assert CliRunner().invoke(app, [*args, "--max-faces", "0"]).exit_code == 0
