"""The shipped default model: round trips of the example chair, determinism, prefixes, byte budgets."""

from pathlib import Path

import numpy as np
import pytest
import trimesh

from vatcodec import codec
from vatcodec.codec.bitstream import header_info
from vatcodec.geometry.mesh_io import load_mesh

RES = 64  # small grids keep CI fast; the default is 256
EXAMPLE_CHAIR = Path(__file__).resolve().parents[1] / "examples" / "chair.obj"


@pytest.fixture(scope="module")
def chair() -> trimesh.Trimesh:
    return load_mesh(EXAMPLE_CHAIR)


def test_default_model_loads_and_is_small():
    path = codec.default_model_path()
    assert path.is_file() and path.stat().st_size <= 25 * 2**20
    net = codec.get_model()
    assert net.cfg.name == "vat-tp2" and len(net.model_id) == 8


@pytest.mark.parametrize(
    "golden, weights", [("chair-vat-s.vat", "vat-s.safetensors"), ("chair-vat-tp.vat", "vat-tp.safetensors")]
)
def test_files_of_earlier_defaults_still_decode(golden, weights):
    """Earlier defaults wrote the golden chairs; each file still finds its own shipped model by the id it carries."""
    data = (Path(__file__).parent / "golden" / golden).read_bytes()
    old = codec.bundled_model_for(header_info(data)["model_id"])
    assert old is not None and old.name == weights
    assert old != codec.default_model_path()
    assert len(codec.decode(data, resolution=32).faces) > 0


def test_chair_round_trip_is_deterministic_and_in_place(chair):
    a, b = codec.encode(EXAMPLE_CHAIR), codec.encode(EXAMPLE_CHAIR)
    assert a == b
    out = codec.decode(a, resolution=RES)
    lo, hi = chair.bounds
    assert np.allclose(out.bounds, chair.bounds, atol=0.2 * (hi - lo).max())


def test_every_prefix_decodes_and_max_bytes_holds(chair):
    net = codec.get_model()
    for n in range(1, len(net.cfg.schedule) + 1):
        data = codec.encode(chair, scales=n)
        assert header_info(data)["scales_present"] == n
        assert len(codec.decode(data, resolution=32).faces) > 0
    for budget in (100, 300, 600):
        assert len(codec.encode(chair, max_bytes=budget)) <= budget
