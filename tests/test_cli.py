"""Tests for the CLI shell (`vatcodec info`, error convention, exit codes) and its file I/O."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vatcodec import __version__, fileio
from vatcodec.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, app, handle_errors
from vatcodec.errors import VatError

VECTOR_DIR = Path(__file__).resolve().parent.parent / "format" / "vectors"
REPO = VECTOR_DIR.parent.parent
runner = CliRunner()


def _vectors(valid: bool) -> list[str]:
    names = sorted(p.stem for p in VECTOR_DIR.glob("*.json"))
    return [n for n in names if json.loads((VECTOR_DIR / f"{n}.json").read_text())["valid"] == valid]


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- in-process (CliRunner) -------------------------------------------------------------------


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout and "format 1.4" in result.stdout
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "info" in result.stdout


@pytest.mark.parametrize("name", _vectors(valid=True))
def test_info_json_matches_vector(name):
    expected = json.loads((VECTOR_DIR / f"{name}.json").read_text())
    result = runner.invoke(app, ["info", "--json", str(VECTOR_DIR / f"{name}.vat")])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["model_id"] == expected["model_id"]
    assert info["schedule"] == expected["schedule"]
    assert info["scales_present"] == expected["num_scales"]
    assert info["codebook_size"] == expected["codebook_size"]
    assert info["coder"] == expected["coder"]
    assert info["file_bytes"] == (VECTOR_DIR / f"{name}.vat").stat().st_size
    assert info["tokens_present"] == sum(len(a) for a in expected["indices"])


def test_info_table_shows_header_fields():
    result = runner.invoke(app, ["info", str(VECTOR_DIR / "extensions_minor3.vat")])
    assert result.exit_code == 0, result.output
    for text in ("0123456789abcdef", "vat 1.3", "3 of 3 present", "0.9375", "extension 200"):
        assert text in result.stdout


def test_info_reads_stdin():
    data = (VECTOR_DIR / "prefix_5of12.vat").read_bytes()
    result = runner.invoke(app, ["info", "--json", "-"], input=data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scales_present"] == 5


def test_info_missing_file_is_one_line(tmp_path):
    missing = tmp_path / "nope.vat"
    result = runner.invoke(app, ["info", str(missing)])
    assert result.exit_code == EXIT_USER_ERROR
    assert _one_error_line(result.stderr) == f"error: input file not found: {missing}"
    assert result.stdout == ""


def test_info_directory_is_one_line(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == EXIT_USER_ERROR
    assert "is a directory" in _one_error_line(result.stderr)


def test_info_corrupt_file_is_one_line(tmp_path):
    data = bytearray((VECTOR_DIR / "paper_12scale_raw.vat").read_bytes())
    data[100] ^= 0x10
    path = tmp_path / "corrupt.vat"
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == EXIT_USER_ERROR
    assert "CRC mismatch" in _one_error_line(result.stderr)


@pytest.mark.parametrize("name", _vectors(valid=False))
def test_info_rejects_invalid_vectors(name):
    expected = json.loads((VECTOR_DIR / f"{name}.json").read_text())
    if "tables" in expected:
        pytest.skip("only a reader with the model's entropy tables sees this error (tests/test_bitstream.py)")
    result = runner.invoke(app, ["info", str(VECTOR_DIR / f"{name}.vat")])
    assert result.exit_code == EXIT_USER_ERROR
    assert expected["error"] in _one_error_line(result.stderr)


def _convention_app(exc: BaseException) -> typer.Typer:
    """A throwaway app whose only command raises `exc`, wrapped by the real convention."""
    test_app = typer.Typer()

    @test_app.command()
    @handle_errors
    def boom(name: str = "x") -> None:
        raise exc

    return test_app


def test_error_convention_multiline_message_becomes_one_line():
    result = runner.invoke(_convention_app(VatError("first\nsecond")), [])
    assert result.exit_code == EXIT_USER_ERROR
    assert _one_error_line(result.stderr) == "error: first second"


def test_error_convention_ctrl_c_exits_130():
    result = runner.invoke(_convention_app(KeyboardInterrupt()), [])
    assert result.exit_code == EXIT_INTERRUPTED
    assert "Traceback" not in result.output


def test_error_convention_keeps_bugs_visible():
    result = runner.invoke(_convention_app(ZeroDivisionError("bug")), [])
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)


# --- real processes ---------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_subprocess_info_json_and_lazy_torch():
    vector = str(VECTOR_DIR / "paper_12scale_raw.vat")
    proc = _run("-X", "importtime", "-m", "vatcodec", "info", "--json", vector)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["header_bytes"], info["scales_present"], info["coder"]) == (56, 12, "raw")
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "torch" not in imported and "trimesh" not in imported


def test_subprocess_missing_file_exit_code():
    proc = _run("-m", "vatcodec", "info", "definitely-missing.vat")
    assert proc.returncode == EXIT_USER_ERROR
    assert _one_error_line(proc.stderr) == "error: input file not found: definitely-missing.vat"


def test_subprocess_ctrl_c_exits_130():
    proc = subprocess.Popen(
        [sys.executable, "-m", "vatcodec", "info", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        wchan = Path(f"/proc/{proc.pid}/wchan")
        deadline = time.monotonic() + 20
        blocked_since = None
        while time.monotonic() < deadline:  # wait until it blocks reading stdin, imports done
            if wchan.exists() and "pipe_read" in wchan.read_text():
                blocked_since = blocked_since or time.monotonic()
                # A loaded machine can show a brief pipe read during start-up: wait for a steady block.
                if time.monotonic() - blocked_since > 0.5:
                    break
            else:
                blocked_since = None
            time.sleep(0.05)
        else:
            pytest.skip("cannot tell when the process blocks on stdin on this platform")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED
    assert b"Traceback" not in stderr


# --- fileio -----------------------------------------------------------------------------------


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    path = tmp_path / "out.vat"
    path.write_bytes(b"old")
    path.chmod(0o640)
    fileio.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.vat"]


def test_new_file_gets_umask_mode_not_0600(tmp_path):
    path = tmp_path / "fresh.vat"
    fileio.atomic_write_bytes(path, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "mesh.obj"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError), fileio.atomic_output(path, suffix=".obj") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".obj")
        tmp.write_bytes(b"partial")
        raise RuntimeError("exporter crashed")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["mesh.obj"]


def test_atomic_output_publishes_on_success(tmp_path):
    path = tmp_path / "mesh.ply"
    with fileio.atomic_output(path, suffix=".ply") as tmp:
        tmp.write_bytes(b"ply data")
        assert not path.exists()
    assert path.read_bytes() == b"ply data"
    assert os.listdir(tmp_path) == ["mesh.ply"]


def test_write_to_missing_directory_is_vat_error(tmp_path):
    with pytest.raises(VatError, match="does not exist"):
        fileio.atomic_write_bytes(tmp_path / "no" / "out.vat", b"x")
    with pytest.raises(VatError, match="is a directory"):
        fileio.atomic_write_bytes(tmp_path, b"x")


def test_dash_means_stdout_and_stdin(capsysbinary, monkeypatch):
    fileio.atomic_write_bytes("-", b"\x00bytes")
    with fileio.atomic_output("-", suffix=".obj") as tmp:
        tmp.write_bytes(b"+more")
    assert capsysbinary.readouterr().out == b"\x00bytes+more"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x01in")))
    assert fileio.read_input_bytes("-") == b"\x01in"


def test_read_missing_file_is_vat_error(tmp_path):
    with pytest.raises(VatError, match="input file not found"):
        fileio.read_input_bytes(tmp_path / "missing.vat")
