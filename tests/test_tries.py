"""Encode-time tries: the best of several surface samplings by quick F-score, a file any decoder reads."""

import pytest

from tests.conftest import tiny_model
from vatcodec import codec
from vatcodec.codec.bitstream import level_offset
from vatcodec.errors import VatError

TRIES = 4
BASE = 5  # a base seed whose first sampling is not the best, with and without the budget


@pytest.fixture(scope="module")
def net(prior):
    from vatcodec.codec.models import set_prior

    return set_prior(tiny_model(), prior)


@pytest.fixture(scope="module")
def shape():
    import trimesh

    # Thin legs under a plate: the encoder's tokens move with the surface points it happens to see.
    parts = [trimesh.creation.box((1.0, 0.08, 0.6)).apply_translation((0, 0.4, 0))]
    for x in (-0.45, 0.45):
        for z in (-0.25, 0.25):
            parts.append(trimesh.creation.box((0.06, 0.8, 0.06)).apply_translation((x, 0, z)))
    return trimesh.util.concatenate(parts)


def quick(net, shape, data: bytes) -> float:
    from vatcodec.codec.quick_score import QuickScorer
    from vatcodec.geometry.mesh_io import normalize_mesh

    vat = codec.unpack_for(data, net)
    return QuickScorer(normalize_mesh(shape)[0]).at_levels(net, vat.indices, vat.completed)(level_offset(vat))


@pytest.mark.parametrize("budget", [None, "cut"])
def test_tries_keep_the_seed_whose_file_scores_best(net, shape, budget):
    """K tries write exactly the file of the seed (seed .. seed + K - 1) with the best quick F, the first on ties."""
    max_bytes = None
    if budget == "cut":  # halfway between two whole-scale files: effort 0 fills it to the token (coder 4)
        sizes = [len(codec.encode(shape, model=net, coder="context", scales=n)) for n in (2, 3)]
        max_bytes = sum(sizes) // 2
    singles = [codec.encode(shape, model=net, max_bytes=max_bytes, seed=BASE + k) for k in range(TRIES)]
    scores = [quick(net, shape, d) for d in singles]
    best = max(range(TRIES), key=lambda k: (scores[k], -k))
    assert best > 0, "the first sampling must not be the best, or this test shows nothing"
    data = codec.encode(shape, model=net, max_bytes=max_bytes, seed=BASE, tries=TRIES)
    assert data == singles[best]
    assert data == codec.encode(
        shape, model=net, max_bytes=max_bytes, seed=BASE, tries=TRIES
    )  # deterministic
    if budget == "cut":
        assert len(data) <= max_bytes and codec.unpack_for(data, net).completed


def test_tries_with_effort_refine_the_chosen_sampling(net, shape):
    """Effort 1 starts from the best try, and still never scores below effort 0's file of that try."""
    e0 = codec.encode(shape, model=net, tries=TRIES, level_search=False)
    e1 = codec.encode(shape, model=net, tries=TRIES, effort=1, time_limit=0, level_search=False)
    assert quick(net, shape, e1) >= quick(net, shape, e0)


@pytest.mark.parametrize("tries", [0, 65, 2.5, True])
def test_bad_tries_are_refused(net, shape, tries):
    with pytest.raises(VatError, match="tries must be an integer in 1..64"):
        codec.encode(shape, model=net, tries=tries)


def test_cli_tries_writes_the_library_file(shape, tmp_path):
    from typer.testing import CliRunner

    from vatcodec.cli import app
    from vatcodec.model.checkpoint import save_checkpoint

    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(0))
    src, out = tmp_path / "table.obj", tmp_path / "table.vat"
    shape.export(src)
    result = CliRunner().invoke(
        app, ["encode", str(src), "-o", str(out), "--model", str(ckpt), "--tries", "3"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == codec.encode(src, model=str(ckpt), tries=3)


# --- the choice between models (`also_models`, `--also-model`) ---------------------------------------------------


def test_also_models_keep_the_file_that_decodes_best(net, shape):
    """Each model writes its own file with the same options; the better quick F wins, whichever model is first."""
    other = tiny_model(1)
    files = [codec.encode(shape, model=m) for m in (net, other)]
    scores = [quick(m, shape, d) for m, d in zip((net, other), files, strict=True)]
    assert scores[0] != scores[1], "the two models must decode differently, or this test shows nothing"
    best = files[int(scores[1] > scores[0])]
    assert codec.encode(shape, model=net, also_models=(other,)) == best
    assert codec.encode(shape, model=other, also_models=(net,)) == best
    with pytest.raises(VatError, match="--also-model does not combine with --quality"):
        codec.encode(shape, model=net, also_models=(other,), quality=0.5)


def test_a_bundled_model_loads_by_name():
    from vatcodec.codec.models import model_id_of, weights_dir

    by_name = codec.get_model("vat-tp2q")
    assert model_id_of(by_name) == model_id_of(codec.get_model(weights_dir() / "vat-tp2q.safetensors"))
    with pytest.raises(VatError, match="model checkpoint not found"):
        codec.get_model("no-such-model")
