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
