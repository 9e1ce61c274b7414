"""`vatcodec encode` / `decode`: outputs, stdin/stdout, exit codes, one-line errors and no partial files."""

from pathlib import Path

import pytest
import trimesh
from conftest import tiny_model
from typer.testing import CliRunner

from vatcodec import codec
from vatcodec.cli import EXIT_USER_ERROR, app
from vatcodec.codec import models as codec_models
from vatcodec.codec.bitstream import unpack
from vatcodec.model.checkpoint import save_checkpoint

runner = CliRunner()

# Every mesh problem the loader reports (the foundation issue's list), as a file name and its content.
BAD_MESHES = {
    "garbage.obj": bytes(range(256)) * 8,
    "garbage.ply": b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n" + bytes(range(256)),
    "points.obj": b"v 0 0 0\nv 1 0 0\nv 0 1 0\n",
    "empty.obj": b"",
    "nan.obj": b"v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n",
    "badindex.obj": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n",
    "coincident.obj": b"v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n",
    "line.obj": b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n",
    "chair.fbx": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(path, tiny_model(0))
    return str(path)


@pytest.fixture
def mesh_file(tmp_path):
    path = tmp_path / "torus.obj"
    trimesh.creation.torus(1.0, 0.3, major_sections=24, minor_sections=12).export(path)
    return path


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def files(folder: Path) -> list[str]:
    """Everything in a folder, hidden temp files included."""
    return sorted(p.name for p in folder.iterdir())


def test_encode_decode_files(ckpt, mesh_file, tmp_path):
    out = tmp_path / "torus.vat"
    result = runner.invoke(app, ["encode", str(mesh_file), "-o", str(out), "--model", ckpt])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == codec.encode(mesh_file, model=ckpt)
    assert f"{len(out.read_bytes())} bytes" in result.stdout
    decoded = tmp_path / "back.ply"
    args = ["decode", str(out), "-o", str(decoded), "--model", ckpt, "--resolution", "32"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    mesh = trimesh.load(decoded, process=False)
    assert len(mesh.faces) > 0


def test_encode_options_and_stdout(ckpt, mesh_file):
    result = runner.invoke(app, ["encode", str(mesh_file), "-o", "-", "--model", ckpt, "--scales", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == codec.encode(mesh_file, model=ckpt, scales=2)
    full = len(codec.encode(mesh_file, model=ckpt))
    args = [
        "encode",
        str(mesh_file),
        "-o",
        "-",
        "--model",
        ckpt,
        "--max-bytes",
        str(full - 1),
        "--coder",
        "raw",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    vat = unpack(result.stdout_bytes)
    assert len(result.stdout_bytes) < full and vat.num_scales < 4 and vat.coder == "raw"


def test_decode_stdin_scales_and_faces(ckpt, mesh_file, tmp_path):
    data = codec.encode(mesh_file, model=ckpt)
    out = tmp_path / "coarse.stl"
    args = ["decode", "-", "-o", str(out), "--model", ckpt, "-r", "24", "--scales", "1", "--faces", "500"]
    result = runner.invoke(app, args, input=data)
    assert result.exit_code == 0, result.output
    assert 0 < len(trimesh.load(out).faces) <= 500


@pytest.mark.parametrize("name", sorted(BAD_MESHES))
def test_bad_mesh_is_one_line_and_leaves_nothing(ckpt, tmp_path, name):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_bytes(BAD_MESHES[name])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = runner.invoke(app, ["encode", str(src), "-o", str(out_dir / "x.vat"), "--model", ckpt])
    assert result.exit_code == EXIT_USER_ERROR
    assert "Traceback" not in one_error_line(result.stderr)
    assert files(out_dir) == []


def test_missing_and_directory_inputs(ckpt, tmp_path):
    for src in (tmp_path / "nope.obj", tmp_path):
        result = runner.invoke(app, ["encode", str(src), "-o", str(tmp_path / "x.vat"), "--model", ckpt])
        assert result.exit_code == EXIT_USER_ERROR
        one_error_line(result.stderr)
    assert not (tmp_path / "x.vat").exists()


def test_batch_reports_each_failure_and_keeps_the_rest(ckpt, mesh_file, tmp_path):
    bad = tmp_path / "nan.obj"
    bad.write_bytes(BAD_MESHES["nan.obj"])
    out = tmp_path / "out"  # created by the command
    result = runner.invoke(app, ["encode", str(mesh_file), str(bad), "-o", str(out), "--model", ckpt])
    assert result.exit_code == EXIT_USER_ERROR
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {bad}: ") and "NaN" in line
    assert files(out) == ["torus.vat"]
    assert (out / "torus.vat").read_bytes() == codec.encode(mesh_file, model=ckpt)
    assert "encoded 1 of 2 files" in result.stdout


def test_batch_in_parallel_matches_serial(ckpt, mesh_file, tmp_path):
    second = tmp_path / "box.ply"
    trimesh.creation.box((1.0, 2.0, 0.5)).export(second)
    out = tmp_path / "out"
    args = ["encode", str(mesh_file), str(second), "-o", str(out), "--jobs", "2", "--model", ckpt]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert files(out) == ["box.vat", "torus.vat"]
    assert (out / "box.vat").read_bytes() == codec.encode(second, model=ckpt)
    assert (out / "torus.vat").read_bytes() == codec.encode(mesh_file, model=ckpt)


def test_batch_usage_errors_fail_before_any_output(ckpt, mesh_file, tmp_path):
    other = tmp_path / "sub" / "torus.obj"
    other.parent.mkdir()
    other.write_bytes(mesh_file.read_bytes())
    out = tmp_path / "out"
    for target in (str(out), "-"):
        result = runner.invoke(app, ["encode", str(mesh_file), str(other), "-o", target, "--model", ckpt])
        assert result.exit_code == EXIT_USER_ERROR
        one_error_line(result.stderr)
    # An option that would fail every file fails once, up front.
    inputs = [str(mesh_file), str(tmp_path / "b.obj")]
    result = runner.invoke(app, ["encode", *inputs, "-o", str(out), "--scales", "9", "--model", ckpt])
    assert result.exit_code == EXIT_USER_ERROR
    assert "scales must be in 1..4" in one_error_line(result.stderr)
    assert not out.exists()


def test_corrupt_or_foreign_vat_is_one_line(ckpt, mesh_file, tmp_path):
    data = codec.encode(mesh_file, model=ckpt)
    flipped = bytearray(data)
    flipped[-6] ^= 0x01
    cases = {
        "flipped.vat": bytes(flipped),
        "truncated.vat": data[:-3],
        "mesh.vat": mesh_file.read_bytes(),
        "empty.vat": b"",
    }
    for name, content in cases.items():
        src = tmp_path / name
        src.write_bytes(content)
        out = tmp_path / f"{name}.obj"
        result = runner.invoke(app, ["decode", str(src), "-o", str(out), "--model", ckpt, "-r", "16"])
        assert result.exit_code == EXIT_USER_ERROR, name
        one_error_line(result.stderr)
        assert not out.exists()
    assert not [n for n in files(tmp_path) if n.startswith(".")]


def test_model_mismatch_names_both_ids(ckpt, mesh_file, tmp_path):
    other = tmp_path / "other.safetensors"
    other_id = save_checkpoint(other, tiny_model(1))
    src = tmp_path / "in.vat"
    src.write_bytes(codec.encode(mesh_file, model=ckpt))
    out = tmp_path / "out.obj"
    result = runner.invoke(app, ["decode", str(src), "-o", str(out), "--model", str(other)])
    assert result.exit_code == EXIT_USER_ERROR
    line = one_error_line(result.stderr)
    assert unpack(src.read_bytes()).model_id.hex() in line and other_id.hex() in line
    assert not out.exists()


def test_decode_output_is_checked_first(ckpt, mesh_file, tmp_path):
    src = tmp_path / "in.vat"
    src.write_bytes(codec.encode(mesh_file, model=ckpt))
    for target in ("-", str(tmp_path / "out.fbx"), str(tmp_path / "missing" / "out.obj")):
        result = runner.invoke(app, ["decode", str(src), "-o", target, "--model", ckpt])
        assert result.exit_code == EXIT_USER_ERROR
        one_error_line(result.stderr)


def test_missing_default_model_is_one_line(monkeypatch, mesh_file, tmp_path):
    monkeypatch.setattr(codec_models, "default_model_path", lambda: tmp_path / "vat-s.safetensors")
    result = runner.invoke(app, ["encode", str(mesh_file), "-o", str(tmp_path / "x.vat")])
    assert result.exit_code == EXIT_USER_ERROR
    assert "default model is missing" in one_error_line(result.stderr)
    result = runner.invoke(app, ["encode", str(mesh_file), "-o", str(tmp_path / "x.vat"), "--model", "no.pt"])
    assert result.exit_code == EXIT_USER_ERROR
    assert "model checkpoint not found" in one_error_line(result.stderr)
    assert not (tmp_path / "x.vat").exists()


def test_decode_batch_writes_every_file_reports_failures_and_matches_single(ckpt, mesh_file, tmp_path):
    data = codec.encode(mesh_file, model=ckpt)
    (tmp_path / "a.vat").write_bytes(data)
    (tmp_path / "b.vat").write_bytes(codec.encode(mesh_file, model=ckpt, scales=2))
    (tmp_path / "bad.vat").write_bytes(b"VAT\x00 not really")
    single = tmp_path / "single.ply"
    ok = runner.invoke(
        app, ["decode", str(tmp_path / "a.vat"), "-o", str(single), "--model", ckpt, "-r", "32"]
    )
    assert ok.exit_code == 0, ok.output
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        srcs = [str(tmp_path / n) for n in ("a.vat", "b.vat", "bad.vat")]
        args = ["decode", *srcs, "-o", str(out), "--model", ckpt, "-r", "32", "--format", "ply", "-j", jobs]
        result = runner.invoke(app, args)
        assert result.exit_code == EXIT_USER_ERROR
        assert "bad.vat" in one_error_line(result.stderr)
        assert files(out) == ["a.ply", "b.ply"]
        assert (out / "a.ply").read_bytes() == single.read_bytes()
        assert "decoded 2 of 3 files" in result.stdout


def test_decode_batch_and_device_usage_errors(ckpt, mesh_file, tmp_path):
    src = tmp_path / "a.vat"
    src.write_bytes(codec.encode(mesh_file, model=ckpt))
    cases = [
        (["decode", str(src), str(src), "-o", str(tmp_path / "o")], "would both be written"),
        (["decode", str(src), str(src), "-o", "-"], "several inputs"),
        (["decode", str(src), "-o", str(tmp_path / "x.obj"), "--device", "tpu"], "unknown device"),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*args, "--model", ckpt])
        assert result.exit_code == EXIT_USER_ERROR
        assert message in one_error_line(result.stderr)
    assert files(tmp_path) == ["a.vat", "torus.obj"]


def test_decode_on_cuda_without_a_gpu_is_one_line(ckpt, mesh_file, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    src = tmp_path / "a.vat"
    src.write_bytes(codec.encode(mesh_file, model=ckpt))
    out = tmp_path / "x.obj"
    result = runner.invoke(app, ["decode", str(src), "-o", str(out), "--device", "cuda"])
    assert result.exit_code == EXIT_USER_ERROR
    assert "no CUDA GPU" in one_error_line(result.stderr)
    assert not out.exists()
    auto = runner.invoke(
        app, ["decode", str(src), "-o", str(out), "--device", "auto", "--model", ckpt, "-r", "24"]
    )
    assert auto.exit_code == 0, auto.output
