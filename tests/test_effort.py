"""Encoder effort and rate control: refinement never loses to effort 0, is reproducible and time-bounded;
`max_bytes` and `quality` keep their promises; CLI flags follow the error convention."""

import time
import warnings

import numpy as np
import pytest
import torch
import trimesh
from conftest import tiny_model
from typer.testing import CliRunner

from vatcodec import codec
from vatcodec.cli import EXIT_USER_ERROR, app
from vatcodec.codec import effort
from vatcodec.codec import level as level_search
from vatcodec.codec.bitstream import header_info, unpack
from vatcodec.errors import VatError
from vatcodec.geometry.mesh_io import normalize_mesh
from vatcodec.model.checkpoint import save_checkpoint

RES = 64  # decode resolution of the F-score checks: the random model's shape is noise anyway
runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_checkpoint(path, tiny_model(0))
    return str(path)


@pytest.fixture(scope="module")
def model(ckpt):
    return codec.get_model(ckpt)


@pytest.fixture(scope="module")
def mesh():
    return trimesh.creation.torus(1.0, 0.3, major_sections=24, minor_sections=12)


@pytest.fixture(scope="module")
def samples(mesh):
    """The samples `encode(seed=0)` refines against: every loss below is measured on these."""
    return effort.occupancy_samples(normalize_mesh(mesh)[0], seed=0)


def loss_of(data: bytes, model, samples) -> float:
    return effort.indices_loss(model, unpack(data).indices, samples)


@pytest.fixture(autouse=True)
def quick_proxy(monkeypatch):
    """The codec's F-score checks at a coarse grid: the random model's shape is noise, and tests stay fast."""
    from vatcodec.codec import level, quick_score

    monkeypatch.setattr(quick_score, "QUICK_RESOLUTION", 32)
    monkeypatch.setattr(level, "LEVEL_RESOLUTION", 32)


def mu_of(model, mesh):
    """The encoder's latent for `encode(seed=0)`."""
    from vatcodec.geometry.sampling import sample_surface

    points, normals = sample_surface(normalize_mesh(mesh)[0], model.cfg.num_points, 0)
    with torch.no_grad():
        return model.encoder(torch.from_numpy(np.concatenate([points, normals], axis=1))[None])[0]


@pytest.mark.parametrize("n", [4, 2])
def test_refinement_improves_the_fit(model, mesh, samples, n):
    mu = mu_of(model, mesh)
    first, more = (effort.refine(model, samples, mu, n, effort=level) for level in (1, 2))
    # Even the untrained decoder's field moves with the latent: 30 steps must find strictly better indices.
    assert first.loss < first.loss0 and first.checkpoints
    assert more.loss <= first.loss + 1e-6  # more of the same steps, starting from the same point


@pytest.mark.parametrize("scales", [None, 2])
def test_effort_is_never_worse_than_effort_0(model, mesh, samples, scales):
    unit = normalize_mesh(mesh)[0]
    base = unpack(codec.encode(mesh, model=model, scales=scales)).indices
    for level in (1, 2):
        # No time limit: on a loaded machine a cut refinement skips the F check, and the guarantee is on the loss only.
        idx = unpack(codec.encode(mesh, model=model, scales=scales, effort=level, time_limit=0)).indices
        assert len(idx) == len(base)
        # The guarantee holds on the samples the level refines against (its plan sets how many).
        samples = effort.level_samples(unit, 0, None, level)
        assert samples.points_1M3.shape[1] == 2 * effort.PLANS[level].samples
        assert effort.indices_loss(model, idx, samples) <= effort.indices_loss(model, base, samples)
        assert effort.fscore_proxy(model, idx, unit) >= effort.fscore_proxy(model, base, unit)


def test_never_worse_than_effort_0_even_when_every_step_goes_wrong(model, mesh, samples, monkeypatch):
    # Learning rates 1000x too large throw the latent far away: the effort-0 file must come back unchanged.
    monkeypatch.setattr(effort, "LATENT_LR", 30.0)
    monkeypatch.setattr(effort, "CODE_LR", 30.0)
    monkeypatch.setattr(effort, "PLANS", {**effort.PLANS, 2: effort.Plan(8, 8, 0)})
    base = codec.encode(mesh, model=model)
    data = codec.encode(mesh, model=model, effort=2)
    assert loss_of(data, model, samples) <= loss_of(base, model, samples)


def test_refine_keeps_the_best_and_reports_it(model, mesh, samples):
    mu = mu_of(model, mesh)
    seen = []
    result = effort.refine(model, samples, mu, 3, effort=1, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert [len(a) for a in result.indices] == list(model.cfg.schedule[:3])
    assert result.loss == effort.indices_loss(model, result.indices, samples) <= result.loss0
    losses = [loss for _, loss in result.checkpoints]
    assert losses == sorted(losses, reverse=True) and losses[-1] == result.loss
    assert result.steps == effort.PLANS[1].latent_steps and not result.stopped_early
    assert codec.EFFORT_LEVELS == effort.EFFORT_LEVELS == (0, *sorted(effort.PLANS))
    # Nothing is accepted: the effort-0 indices stay, whatever the steps find.
    refused = effort.refine(model, samples, mu, 3, effort=1, accept=lambda idx: False)
    assert refused.loss == refused.loss0


def test_same_seed_same_bytes(model, mesh):
    # No time limit: where a limit cuts the work (a loaded machine) the bytes depend on the machine's speed.
    first = codec.encode(mesh, model=model, effort=2, coder="raw", time_limit=0)
    assert codec.encode(mesh, model=model, effort=2, coder="raw", time_limit=0) == first


def test_a_tiny_time_limit_returns_quickly_and_a_valid_file(model, mesh, samples):
    start = time.monotonic()
    # The refinement's limit alone (the level search's share of a limit: next test).
    with pytest.warns(codec.TimeLimitWarning, match="reached its 0.2 s time limit"):
        data = codec.encode(mesh, model=model, effort=3, time_limit=0.2, level_search=False)
    took = time.monotonic() - start
    assert took < 3.0  # the full effort 3 takes about 10 s on this model; sampling the oracle ~0.3 s
    assert unpack(data).num_scales == len(model.cfg.schedule)
    assert loss_of(data, model, samples) <= loss_of(codec.encode(mesh, model=model), model, samples)
    assert len(codec.decode(data, model=model, resolution=32).faces) > 0


def test_a_time_limit_leaves_the_level_search_its_share(model, mesh, monkeypatch):
    # Effort 3 on this model takes about 10 s, so a 3 s limit cuts the refinement. With a share it stops early
    # and the level is searched; with none it refines to the limit and the search is skipped. A share of one
    # half (the codec's is 0.2) leaves a wide margin for a loaded machine.
    def cut_with(share: float) -> str:
        monkeypatch.setattr(level_search, "LEVEL_SEARCH_SHARE", share)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", codec.TimeLimitWarning)
            codec.encode(mesh, model=model, effort=3, time_limit=3.0)
        cut = [str(w.message) for w in caught if issubclass(w.category, codec.TimeLimitWarning)]
        assert len(cut) == 1, cut
        return cut[0]

    shared = cut_with(0.5)
    assert "stopped after" in shared and "not searched" not in shared and "surface-level search" in shared
    assert "surface level: not searched" in cut_with(0.0)


def test_refine_stops_at_its_deadline(model, samples):
    mu = torch.zeros(1, model.cfg.num_latents, model.cfg.latent_dim)
    result = effort.refine(model, samples, mu, 4, effort=3, deadline=time.monotonic() + 0.3)
    assert result.stopped_early and result.seconds < 2.0 and result.loss <= result.loss0


@pytest.mark.parametrize("coder", ["raw", "zstd"])
def test_max_bytes_holds_with_effort(model, mesh, coder, monkeypatch):
    # A plan with fewer samples than the default: the guarantee must hold on the samples that plan refines on.
    monkeypatch.setattr(effort, "PLANS", {**effort.PLANS, 1: effort.Plan(30, 0, 0, samples=1024)})
    level1 = effort.level_samples(normalize_mesh(mesh)[0], 0, None, 1)
    assert level1.points_1M3.shape[1] == 2048
    seen, refine = [], effort.refine
    monkeypatch.setattr(
        effort, "refine", lambda net, samples, *a, **k: seen.append(samples) or refine(net, samples, *a, **k)
    )
    sizes = [len(codec.encode(mesh, model=model, scales=n, coder=coder)) for n in range(1, 5)]
    for budget in sorted({sizes[0], sizes[1] + 1, sizes[2] - 1, sizes[3]}):
        base = codec.encode(mesh, model=model, max_bytes=budget, coder=coder)
        data = codec.encode(mesh, model=model, max_bytes=budget, coder=coder, effort=1)
        assert len(data) <= budget
        assert loss_of(data, model, level1) <= loss_of(base, model, level1)
        # Effort 0's prefix, refined within the budget, or one scale fewer when that budget is tight.
        n, n0 = unpack(data).num_scales, unpack(base).num_scales
        assert n == n0 or (n == n0 - 1 and len(base) > codec.TIGHT_BUDGET * budget)
    with pytest.raises(VatError, match="smallest file"):
        codec.encode(mesh, model=model, max_bytes=sizes[0] - 1, coder=coder, effort=1)
    assert seen and all(torch.equal(s.points_1M3, level1.points_1M3) for s in seen)


def encode_quality(mesh, model, q, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = codec.encode(mesh, model=model, quality=q, quality_resolution=RES, **options)
    missed = [w for w in caught if issubclass(w.category, codec.QualityWarning)]
    f = codec.measure_fscore(data, mesh, model=model, resolution=RES)  # recomputed from the bytes alone
    assert header_info(data)["fscore"] == pytest.approx(f, abs=1e-6)  # recorded as float32
    return data, f, missed


def test_quality_returns_a_file_that_reaches_it(model, mesh):
    per_prefix = [
        codec.measure_fscore(codec.encode(mesh, model=model, scales=n), mesh, model=model, resolution=RES)
        for n in range(1, 5)
    ]
    q = min(per_prefix)  # reachable: the largest file reaches it, and the bisection looks below that
    data, f, missed = encode_quality(mesh, model, q)
    assert not missed and f >= q
    n = unpack(data).num_scales
    if all(a <= b for a, b in zip(per_prefix, per_prefix[1:], strict=False)):  # bisection is exact then
        assert n == next(k for k, fk in enumerate(per_prefix, start=1) if fk >= q)


def test_unreachable_quality_writes_the_best_file_and_warns(model, mesh):
    data, f, missed = encode_quality(mesh, model, 1.0, effort=1)
    assert len(missed) == 1 and "not reached" in str(missed[0].message) and "\n" not in str(missed[0].message)
    assert f < 1.0 and unpack(data).num_scales == len(model.cfg.schedule)
    # Under a byte budget the largest prefix that fits is the best there is, F extension included.
    budget = len(codec.encode(mesh, model=model, scales=3)) + 6
    data, f, missed = encode_quality(mesh, model, 1.0, max_bytes=budget)
    assert missed and len(data) <= budget and unpack(data).num_scales == 3


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--effort", "4", "effort must be one of 0, 1, 2, 3, got 4"),
        ("--time-limit", "-1", "time limit must be a number of seconds >= 0"),
        ("--quality", "1.5", "quality must be an F-score in (0, 1]"),
        ("--tries", "0", "tries must be an integer in 1..64, got 0"),
    ],
)
def test_cli_bad_values_are_one_line(ckpt, mesh, tmp_path, flag, value, message):
    src, out = tmp_path / "torus.obj", tmp_path / "torus.vat"
    mesh.export(src)
    result = runner.invoke(app, ["encode", str(src), "-o", str(out), "--model", ckpt, flag, value])
    assert result.exit_code == EXIT_USER_ERROR
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not out.exists()


def test_cli_effort_seed_and_quality(ckpt, mesh, tmp_path):
    src, out = tmp_path / "torus.obj", tmp_path / "torus.vat"
    mesh.export(src)
    args = ["encode", str(src), "-o", str(out), "--model", ckpt, "--effort", "1", "--seed", "3"]
    args += ["--time-limit", "0"]  # no limit, so that the bytes do not depend on the machine's load
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == codec.encode(src, model=ckpt, effort=1, seed=3, time_limit=0)
    # An unreachable quality still writes its best file: a one-line warning and exit status 0.
    result = runner.invoke(app, ["encode", str(src), "-o", str(out), "--model", ckpt, "--quality", "1"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: F-score 1 is not reached"), result.stderr
    assert "F-score" in result.stdout
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and "F-score" in info.stdout


def test_effort_levels_have_default_time_limits_and_zero_removes_them():
    from vatcodec.codec.encoding import DEFAULT_TIME_LIMITS, effective_time_limit

    assert effective_time_limit(0, None) is None
    for level in (1, 2, 3):
        assert effective_time_limit(level, None) == DEFAULT_TIME_LIMITS[level] > 0
        assert effective_time_limit(level, 0) is None
        assert effective_time_limit(level, 7) == 7.0
    assert DEFAULT_TIME_LIMITS[1] < DEFAULT_TIME_LIMITS[2] < DEFAULT_TIME_LIMITS[3]


def test_cli_says_where_the_time_limit_stopped_and_writes_the_file(ckpt, mesh, tmp_path):
    src, out = tmp_path / "torus.obj", tmp_path / "torus.vat"
    mesh.export(src)
    args = ["encode", str(src), "-o", str(out), "--model", ckpt, "--effort", "3", "--time-limit", "0.2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: effort 3 reached its 0.2 s time limit")
    assert "--time-limit 0" in lines[0]
    assert unpack(out.read_bytes()).num_scales == len(unpack(out.read_bytes()).schedule)


def test_every_effort_level_runs_on_a_triplane_latent(mesh, samples, monkeypatch):
    """Code steps and the index search see three token grids per scale: never worse than effort 0 there either."""
    from test_triplane_latent import tiny_tp

    tp = tiny_tp().eval()
    monkeypatch.setattr(
        effort,
        "PLANS",
        {1: effort.Plan(4, 0, 0), 2: effort.Plan(4, 4, 0), 3: effort.Plan(4, 4, 2 * effort.SEARCH_TRIES)},
    )
    base = unpack(codec.encode(mesh, model=tp)).indices
    for level in (1, 2, 3):
        idx = unpack(codec.encode(mesh, model=tp, effort=level, time_limit=0)).indices
        assert [len(i) for i in idx] == list(tp.cfg.schedule)
        assert effort.indices_loss(tp, idx, samples) <= effort.indices_loss(tp, base, samples)
