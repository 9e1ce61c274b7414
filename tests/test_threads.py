"""Thread policy: explicit --threads, then OMP_NUM_THREADS, then the free cores; bytes independent of threads."""

import numpy as np
import pytest
import torch
import trimesh
from conftest import tiny_model
from typer.testing import CliRunner

from vatcodec import codec, threads
from vatcodec.cli import EXIT_USER_ERROR, app
from vatcodec.codec.decoding import decode_arrays
from vatcodec.errors import VatError
from vatcodec.model.checkpoint import save_checkpoint


def test_precedence_explicit_then_environment_then_free_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 3)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.free_cores() == 5
    assert threads.choose_threads() == 5
    assert threads.choose_threads(jobs=2) == 2  # the free cores are shared among the workers
    assert threads.choose_threads(jobs=9) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads() == 3
    assert threads.choose_threads(2) == 2
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 20)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.choose_threads() == 1  # a busy machine still gets one thread


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_bad_thread_counts_are_errors(monkeypatch, bad):
    monkeypatch.setenv("OMP_NUM_THREADS", bad)
    with pytest.raises(VatError, match="OMP_NUM_THREADS must be a positive integer"):
        threads.choose_threads()
    with pytest.raises(VatError, match="--threads must be >= 1"):
        threads.choose_threads(0)


def test_running_processes_are_read_from_this_machine():
    assert threads.usable_cores() >= 1
    assert threads.running_elsewhere() >= 0
    assert 1 <= threads.free_cores() <= threads.usable_cores()


def test_one_thread_block_restores_the_count():
    torch.set_num_threads(2)
    with threads.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_effort0_bytes_do_not_depend_on_the_thread_count():
    net = tiny_model(0)
    meshes = [
        trimesh.creation.torus(1.0, 0.3),
        trimesh.creation.box((1.0, 0.2, 0.6)),
        trimesh.creation.icosphere(3),
    ]
    for mesh in meshes:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(codec.encode(mesh, model=net))
        assert out[0] == out[1]


def test_decoded_mesh_does_not_depend_on_the_thread_count():
    # Failed before decode ran the plane transformer on one thread: vertices 2e-5 apart at 1 vs 2 threads.
    net = tiny_model(0)
    data = codec.encode(trimesh.creation.torus(1.0, 0.3, major_sections=24, minor_sections=12), model=net)
    out = []
    for n in (1, 2):
        torch.set_num_threads(n)
        out.append(decode_arrays(data, model=net, resolution=32))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def test_cli_threads_option_sets_torch_threads(tmp_path):
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    src = tmp_path / "t.obj"
    trimesh.creation.torus(1.0, 0.3).export(src)
    torch.set_num_threads(2)
    runner = CliRunner()
    result = runner.invoke(
        app, ["encode", str(src), "-o", str(tmp_path / "t.vat"), "--model", str(ckpt), "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    result = runner.invoke(app, ["decode", str(tmp_path / "t.vat"), "-o", str(tmp_path / "t.obj"), "--model", str(ckpt),
                                 "-r", "16", "--threads", "0"])  # fmt: skip
    assert result.exit_code == EXIT_USER_ERROR and "--threads must be >= 1" in result.stderr
