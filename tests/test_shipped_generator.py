"""The shipped generator: size, pairing with the shipped tokenizer, and `vatcodec generate` end to end."""

from pathlib import Path

from typer.testing import CliRunner

from vatcodec import codec
from vatcodec.cli import app
from vatcodec.generation.generate import default_generator_path, get_generator
from vatcodec.geometry.mesh_io import load_mesh

EXAMPLE_IMAGE = Path(__file__).resolve().parents[1] / "examples" / "chair.png"


def test_shipped_generator_is_small_and_matches_the_shipped_tokenizer():
    path = default_generator_path()
    assert path.is_file() and path.stat().st_size <= 25 * 2**20
    gen = get_generator()
    # It predicts vat-s tokens (trained before vat-tp became the default); generate loads that tokenizer.
    tok = codec.bundled_model_for(gen.cfg.tokenizer_id)
    assert tok is not None and gen.cfg.tokenizer_id == bytes(codec.model_id_of(codec.get_model(tok))).hex()
    assert gen.meta.get("step", 0) > 0  # trained, not a fresh init


def test_generate_command_writes_a_vat_and_a_mesh(tmp_path):
    out, mesh = tmp_path / "s.vat", tmp_path / "s.obj"
    args = [
        "generate",
        "-i",
        str(EXAMPLE_IMAGE),
        "-o",
        str(out),
        "--mesh",
        str(mesh),
        "-r",
        "64",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    decoded = codec.decode(out.read_bytes(), resolution=64)
    assert len(decoded.faces) > 0
    written = load_mesh(mesh)
    assert abs(written.extents.max() - 1.0) < 0.3  # generated shapes live in the unit cube
