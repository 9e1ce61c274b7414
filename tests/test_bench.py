"""`vatcodec bench --quick` end to end (the CI smoke run), its resume cache, and its reports' shape."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vatcodec.cli import app

GOLDEN = Path(__file__).parent / "golden" / "bench_quick_baselines.json"
pytest.importorskip("DracoPy")
pytest.importorskip("matplotlib")
pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "quick"
    result = CliRunner().invoke(app, ["bench", "--quick", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_quick_writes_every_artifact(quick_run: Path) -> None:
    for name in ("results.json", "per_mesh.csv", "summary.csv", "rows.jsonl", "gallery.png"):
        assert (quick_run / name).stat().st_size > 0, name
    for metric in ("fscore", "chamfer"):
        for ext in ("png", "svg"):
            assert (quick_run / f"rd_{metric}.{ext}").stat().st_size > 1000
    results = json.loads((quick_run / "results.json").read_text())
    names = [c["name"] for c in results["codecs"]]
    assert names == ["vat", "draco", "voxel", "classical-best"]
    for c in results["codecs"]:  # CompressAI's shape: name, description, results of parallel lists
        r = c["results"]
        assert c["description"] and len(r["bytes"]) == len(r["fscore"]) == len(r["chamfer"]) == len(r["rate"])
        assert all(0.0 <= f <= 1.0 for f in r["fscore"])
    compressai = json.loads((quick_run / "compressai" / "vat.json").read_text())
    assert set(compressai) == {"name", "description", "results"}
    assert results["errors"] == []
    assert results["occupancy"]["vat"]["meshes"] == 3
    assert results["speed"]["vat"]["peak_rss_mb"] > 0


def test_quick_rows_are_consistent(quick_run: Path) -> None:
    rows = list(csv.DictReader((quick_run / "per_mesh.csv").open()))
    vat = [r for r in rows if r["codec"] == "vat"]
    assert len(vat) == 3 * 5  # three meshes, five prefixes ending at the full stream
    for mesh in {r["mesh"] for r in vat}:
        sizes = [int(r["bytes"]) for r in sorted(vat, key=lambda r: int(r["rate"])) if r["mesh"] == mesh]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # more scales, more bytes
    for r in rows:
        if r["codec"] in ("draco", "voxel") and r["bytes"]:
            assert int(r["bytes"]) <= int(r["rate"])  # each baseline fits its budget


def test_quick_baselines_match_golden(quick_run: Path) -> None:
    """Baseline numbers are deterministic: guard them with a golden file and a small tolerance."""
    results = json.loads((quick_run / "results.json").read_text())
    got = {
        c["name"]: dict(zip(c["results"]["rate"], c["results"]["fscore"], strict=True))
        for c in results["codecs"]
    }
    golden = json.loads(GOLDEN.read_text())
    for codec, by_rate in golden["fscore"].items():
        for rate, f in by_rate.items():
            assert got[codec][int(rate)] == pytest.approx(f, abs=golden["tolerance"]), (codec, rate)


def test_resume_does_no_new_work(quick_run: Path) -> None:
    before = (quick_run / "rows.jsonl").read_text()
    result = CliRunner().invoke(
        app, ["bench", "--quick", "-o", str(quick_run), "--gallery", "0", "--no-plots"]
    )
    assert result.exit_code == 0, result.output
    assert (quick_run / "rows.jsonl").read_text() == before


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    for args, needle in [
        (["bench", str(tmp_path / "nope"), "-o", str(tmp_path / "o")], "is not a folder"),
        (["bench", str(tmp_path), "-o", str(tmp_path / "o")], "no mesh files"),
        (["bench", "--quick", "--codecs", "vat,jpeg", "-o", str(tmp_path / "o")], "unknown codec"),
        (["bench", "--quick", "--budgets", "5,x", "-o", str(tmp_path / "o")], "comma-separated"),
        (["bench", "-o", str(tmp_path / "o")], "give a folder"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and result.output.count("\n") == 1, result.output


@pytest.fixture(scope="module")
def budget_run(quick_run: Path) -> Path:
    """Our codec alone at byte budgets with the default encode, on the quick run's meshes."""
    out = quick_run.parent / "budgets"
    args = ["bench", str(quick_run / "meshes"), "-o", str(out), "--codecs", "vat", "--vat-budgets"]
    args += ["--budgets", "16,256,4096", "-r", "128", "--no-occupancy", "--gallery", "0", "--no-plots"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_budget_mode_fits_each_budget_and_loses_what_cannot_fit(budget_run: Path) -> None:
    results = json.loads((budget_run / "results.json").read_text())
    (curve,) = results["codecs"]
    assert curve["name"] == "vat@bytes" and "max-bytes" in curve["description"]
    rows = list(csv.DictReader((budget_run / "per_mesh.csv").open()))
    assert sorted({int(r["rate"]) for r in rows}) == [16, 256, 4096] and len(rows) == 3 * 3
    for r in rows:
        if int(r["rate"]) == 16:  # below any one-scale file: lost, as a baseline with nothing that fits
            assert r["bytes"] == "" and float(r["fscore"]) == 0.0 and "cannot fit in 16 bytes" in r["error"]
        else:
            assert 0 < int(r["bytes"]) <= int(r["rate"]) and float(r["fscore"]) > 0


def test_budget_mode_at_a_budget_the_stream_fits_scores_the_full_prefix(
    quick_run: Path, budget_run: Path
) -> None:
    """4 KB holds the whole stream: the same file as the full prefix, so the same bytes and F for every mesh."""
    full = {}
    for r in csv.DictReader((quick_run / "per_mesh.csv").open()):
        if r["codec"] == "vat" and (r["mesh"] not in full or int(r["rate"]) > int(full[r["mesh"]]["rate"])):
            full[r["mesh"]] = r
    at_4k = {
        r["mesh"]: r for r in csv.DictReader((budget_run / "per_mesh.csv").open()) if r["rate"] == "4096"
    }
    assert set(at_4k) == set(full)
    for mesh, r in at_4k.items():
        assert (r["bytes"], r["fscore"]) == (full[mesh]["bytes"], full[mesh]["fscore"]), mesh


def test_budget_mode_with_another_model_decodes_each_file_with_the_model_it_names(quick_run: Path) -> None:
    out = quick_run.parent / "budgets-also"
    args = ["bench", str(quick_run / "meshes"), "-o", str(out), "--codecs", "vat,draco", "--vat-budgets"]
    args += ["--budgets", "256", "-r", "64", "--also-model", "vat-tp2q", "--no-occupancy", "--gallery", "1"]
    result = CliRunner().invoke(app, [*args, "--no-plots"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in results["codecs"]][0] == "vat@bytes,also=vat-tp2q" and results["errors"] == []
    rows = [r for r in csv.DictReader((out / "per_mesh.csv").open()) if r["codec"].startswith("vat")]
    assert len(rows) == 3 and all(0 < int(r["bytes"]) <= 256 and float(r["fscore"]) > 0 for r in rows)
    assert (out / "gallery.png").stat().st_size > 0


def test_a_file_of_the_other_model_is_decoded_by_it(tmp_path: Path) -> None:
    """An untrained primary loses the quick-F pick to vat-tp2, whose context-coded file then decodes with vat-tp2
    (the primary, without a prior, has no context id: it must be passed over, not counted as a lost file)."""
    from test_learning_table import table_mesh

    from tests.conftest import tiny_model
    from vatcodec.bench.measure import measure_vat_budgets

    path = tmp_path / "table.obj"
    table_mesh().export(path)
    options = dict(effort=0, time_limit=None, level_search=None, tries=1, also_models=("vat-tp2",))
    rows = measure_vat_budgets(str(path), "table.obj", tiny_model(), "vat@bytes", [512], 64, options)
    (row,) = rows
    assert row["also_model"] == "vat-tp2" and row["error"] is None and 0 < row["bytes"] <= 512
    assert row["fscore"] > 0.5


def test_changed_parameters_redo_a_cached_job(budget_run: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "again"
    shutil.copytree(budget_run, out)
    args = ["bench", str(budget_run.parent / "quick" / "meshes"), "-o", str(out), "--codecs", "vat"]
    args += [
        "--vat-budgets",
        "--budgets",
        "16,4096",
        "-r",
        "128",
        "--no-occupancy",
        "--gallery",
        "0",
        "--no-plots",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "per_mesh.csv").open()))
    assert (
        sorted(int(r["rate"]) for r in rows) == [16] * 3 + [4096] * 3
    )  # the 256 B rows are gone with their job
    at_4k = {r["mesh"]: r["fscore"] for r in rows if r["rate"] == "4096"}
    before = {
        r["mesh"]: r["fscore"]
        for r in csv.DictReader((budget_run / "per_mesh.csv").open())
        if r["rate"] == "4096"
    }
    assert at_4k == before  # the same job, redone: deterministic


def test_encode_options_need_budget_mode(tmp_path: Path) -> None:
    for extra, needle in [
        (["--vat-budgets", "--effort", "5"], "effort must be 0-3"),
        (["--vat-budgets", "--also-model", str(tmp_path / "none.safetensors")], "none.safetensors"),
        (["--tries", "2"], "--vat-budgets only"),
        (["--vat-budgets", "--prefixes", "3"], "exclude"),
    ]:
        result = CliRunner().invoke(app, ["bench", "--quick", "-o", str(tmp_path / "o"), *extra])
        assert result.exit_code == 2 and needle in result.output and result.output.count("\n") == 1, (
            result.output
        )
