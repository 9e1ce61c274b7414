"""The fast mesh writers: printf-exact text, loadable files, binary PLY, atomic writes and clear errors."""

import numpy as np
import pytest

from vatcodec.errors import MeshError
from vatcodec.geometry.mesh_io import load_mesh
from vatcodec.geometry.mesh_write import obj_bytes, off_bytes, ply_bytes, write_mesh


def sample_mesh(n: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    scale = rng.choice([1e-6, 1e-2, 1.0, 37.0, 4e4], size=(n, 3))
    v = (rng.random((n, 3)) * 2 - 1) * scale
    v[0] = [0.0, -0.0, 1.0]
    v[1] = [-1e-12, 123456.5, -7.0]
    f = rng.integers(0, n, size=(2 * n, 3))
    return v, f


def test_obj_text_is_printf_text():
    v, f = sample_mesh()
    lines = obj_bytes(v, f).decode("ascii").splitlines()
    assert lines[0].startswith("#")
    want_v = ["v " + " ".join(f"{x:.8f}" for x in row) for row in v]
    want_f = ["f " + " ".join(str(int(i) + 1) for i in row) for row in f]
    got_v, got_f = lines[1 : 1 + len(v)], lines[1 + len(v) :]
    assert got_f == want_f
    # Digits agree with printf except, rarely, the last one (rounding of x * 1e8 against of x itself).
    for g, w in zip(got_v, want_v, strict=True):
        gv, wv = np.array(g.split()[1:], float), np.array(w.split()[1:], float)
        assert np.allclose(gv, wv, rtol=0, atol=1.01e-8), (g, w)
        assert [s.startswith("-") for s in g.split()] == [s.startswith("-") for s in w.split()]


def test_huge_coordinates_fall_back_to_plain_formatting():
    v = np.array([[1e12, -3.5e11, 0.25], [0, 0, 0], [1, 1, 1]])
    text = obj_bytes(v, np.array([[0, 1, 2]])).decode()
    assert "v 1000000000000.00000000 -350000000000.00000000 0.25000000" in text


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply", ".stl", ".glb"])
def test_written_files_load_back(tmp_path, suffix):
    rng = np.random.default_rng(1)
    v = rng.random((60, 3)) * 3 - 1
    f = np.stack([np.arange(58), np.arange(1, 59), np.arange(2, 60)], axis=1)
    path = tmp_path / f"m{suffix}"
    write_mesh(v, f, path)
    back = load_mesh(path)
    assert len(back.faces) == len(f)
    atol = 1e-6 if suffix in (".stl", ".glb") else 1e-8  # float32 formats
    np.testing.assert_allclose(np.asarray(back.vertices)[np.asarray(back.faces)], v[f], atol=atol)


def test_ply_is_binary_with_the_declared_counts():
    v, f = sample_mesh(50)
    data = ply_bytes(v, f)
    head, body = data.split(b"end_header\n", 1)
    assert b"element vertex 50" in head and b"element face 100" in head
    assert len(body) == 50 * 24 + 100 * 13
    assert off_bytes(v, f).startswith(b"OFF\n50 100 0\n")


def test_bad_writes_are_one_line_errors_and_leave_nothing(tmp_path):
    v, f = sample_mesh(10)
    with pytest.raises(MeshError, match="cannot save mesh as '.xyz'"):
        write_mesh(v, f, tmp_path / "m.xyz")
    with pytest.raises(MeshError, match="out of range"):
        obj_bytes(v, f + 100)
    target = tmp_path / "keep.obj"
    target.write_text("old")
    with pytest.raises(MeshError, match="NaN"):
        write_mesh(np.full((10, 3), np.nan), f, target)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.obj"]
