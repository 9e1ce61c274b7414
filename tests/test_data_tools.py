"""Generated training data: procedural assemblies are deterministic shapes, and a mixed cache keeps validation."""

import json

import numpy as np
import pytest
from test_training import write_cache

from training.data import INDEX_NAME, ShapeCache
from training.mix_cache import mix_caches
from training.procedural import KINDS, make_shape, write_shapes


def test_procedural_shapes_are_deterministic_and_varied(tmp_path):
    paths = write_shapes(tmp_path, 2 * len(KINDS), seed=3)
    assert len(paths) == 2 * len(KINDS) and all(p.is_file() for p in paths)
    assert {p.parent.name for p in paths} == set(KINDS)
    for kind in KINDS:
        a, b, c = make_shape(kind, 5), make_shape(kind, 5), make_shape(kind, 6)
        assert np.array_equal(a.vertices, b.vertices)
        assert not np.allclose(a.extents, c.extents)  # another seed, other proportions
        assert len(a.faces) >= 12 and np.all(a.extents > 0.05)
    # Furniture stands on the floor plane y = 0 (legs, bases, panels start there).
    assert all(abs(make_shape(k, i).bounds[0, 1]) < 1e-6 for k in KINDS for i in range(8))


def test_mix_keeps_the_base_validation_and_adds_training_shapes(tmp_path):
    base, extra, out = tmp_path / "base", tmp_path / "extra", tmp_path / "mix"
    write_cache(base, 2)
    write_cache(extra, 3)
    index = mix_caches(out, base, [extra])
    assert index["counts"] == {"train": 2 + 6, "val": 2}  # every extra shape trains, from both its splits
    val = ShapeCache.load(out, "val")
    assert val.names == ShapeCache.load(base, "val").names
    assert np.array_equal(val.query_sdf, ShapeCache.load(base, "val").query_sdf)
    train = ShapeCache.load(out, "train")
    assert len(train) == 8 and sum(n.startswith("extra/") for n in train.names) == 6
    with pytest.raises(ValueError, match="already holds a cache"):
        mix_caches(out, base, [extra])
    bad = json.loads((extra / INDEX_NAME).read_text()) | {"n_uniform": 7}
    (extra / INDEX_NAME).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="n_uniform"):
        mix_caches(tmp_path / "mix2", base, [extra])
