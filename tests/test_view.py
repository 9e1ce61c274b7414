"""`vatcodec view`: a self-contained page per .vat file, its errors, and a real browser rendering it."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import tiny_model
from typer.testing import CliRunner

from vatcodec import codec
from vatcodec.cli import EXIT_USER_ERROR, app
from vatcodec.codec.bitstream import header_info
from vatcodec.model.checkpoint import save_checkpoint
from vatcodec.views import browser
from vatcodec.views.page import render_page, write_view_page

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CHAIR_VAT = ROOT / "tests" / "golden" / "chair-vat-s.vat"
CHAIR_OBJ = ROOT / "examples" / "chair.obj"


def payload(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    m = re.search(r'<script id="vat-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("view")
    ckpt = folder / "tiny.safetensors"
    net = tiny_model(0)
    save_checkpoint(ckpt, net)
    mesh = folder / "torus.obj"
    trimesh.creation.torus(0.35, 0.12).export(mesh)
    vat = folder / "torus.vat"
    vat.write_bytes(codec.encode(mesh, model=str(ckpt)))
    return ckpt, mesh, vat


def test_page_holds_every_prefix_with_its_file_size(tiny, tmp_path):
    ckpt, mesh, vat = tiny
    out = tmp_path / "page.html"
    done = write_view_page(vat, out, original=mesh, model=str(ckpt), resolution=24)
    page = payload(out)
    data = vat.read_bytes()
    n = header_info(data)["scales_present"]
    assert [p["scales"] for p in page["prefixes"]] == list(range(1, n + 1))
    for p in page["prefixes"]:
        cut = codec.recode(data, model=str(ckpt), coder=page["coder"], scales=p["scales"])
        assert p["bytes"] == header_info(cut)["file_bytes"]
        assert p["fscore"] is None or 0.0 <= p["fscore"] <= 1.0
    assert page["prefixes"][-1]["bytes"] == len(data)
    assert page["original"]["bytes"] == mesh.stat().st_size
    q = np.frombuffer(base64.b64decode(page["original"]["positions"]), "<u2").reshape(-1, 3)
    lo, hi = page["quant"]
    positions = lo + q / 65535 * (hi - lo)
    assert np.abs(positions).max() <= 0.5 + 1e-4  # in the file's unit cube, like the decodes
    assert np.abs(positions).max() > 0.45
    assert done["page_bytes"] == out.stat().st_size
    text = out.read_text(encoding="utf-8")
    assert "REVISION" in text and "https://" not in text.split('<script type="module">')[1]


def test_payload_cannot_close_its_script_element():
    text = render_page({"prefixes": [], "scales_total": 0, "note": "</script><b>"}, "x</script>.vat")
    body = text.split('<script id="vat-data" type="application/json">')[1]
    assert body.index("</script>") > body.index("<\\/script>")
    assert "x&lt;/script&gt;.vat" in text


def test_bad_inputs_are_one_line_and_write_no_page(tiny, tmp_path):
    ckpt, mesh, vat = tiny
    corrupt = tmp_path / "bad.vat"
    corrupt.write_bytes(vat.read_bytes()[:20])
    unreadable = tmp_path / "missing.obj"
    cases = [
        ["view", str(corrupt), "-o", str(tmp_path / "a.html"), "--model", str(ckpt)],
        ["view", str(vat), "-o", str(tmp_path / "b.html")],  # written by the tiny model, read with vat-s
        [
            "view",
            str(vat),
            "-o",
            str(tmp_path / "c.html"),
            "--model",
            str(ckpt),
            "--original",
            str(unreadable),
        ],
        ["view", str(vat), "-o", str(tmp_path / "d.txt"), "--model", str(ckpt)],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == EXIT_USER_ERROR, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "model id mismatch" in runner.invoke(app, cases[1]).stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vat"]


def screenshot(exe: str, page: Path, prefix: int, out: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(browser.screenshot(page, out, prefix, exe=exe)).convert("RGB")).astype(int)


def test_chair_page_renders_in_a_real_browser(tmp_path):
    exe = browser.find_chromium()
    if exe is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    page = tmp_path / "chair.html"
    result = runner.invoke(
        app, ["view", str(CHAIR_VAT), "--original", str(CHAIR_OBJ), "-o", str(page), "-r", "64"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["info", str(CHAIR_VAT), "--json"]).stdout)
    n = info["scales_present"]
    dom = browser.dump_dom(page, n, exe=exe)
    assert 'data-ready="1"' in dom, dom[-2000:]
    label = re.search(r'<span id="label" data-scales="(\d+)" data-bytes="(\d+)">([^<]*)</span>', dom)
    assert label, dom[-2000:]
    assert int(label.group(1)) == n and int(label.group(2)) == info["file_bytes"]
    assert f"scales {n} of {n} · {info['file_bytes']} B" in label.group(3)
    full = screenshot(exe, page, n, tmp_path / "full.png")
    first = screenshot(exe, page, 1, tmp_path / "first.png")
    background = np.array([0xF4, 0xF4, 0xF2])
    left = full[60:, : full.shape[1] // 2]  # the decoded view, below the bar
    assert (np.abs(left - background).sum(axis=-1) > 30).mean() > 0.02  # the shape is drawn
    assert np.abs(full - first).sum(axis=-1).astype(bool).mean() > 0.005  # another prefix, another picture


def test_bench_writes_pages_for_its_gallery_meshes(tiny, tmp_path):
    from vatcodec.bench.gallery_rows import write_pages
    from vatcodec.bench.run import BenchOptions

    ckpt, mesh, _ = tiny
    root = mesh.parent
    opts = BenchOptions(folder=str(root), out=str(tmp_path), models=[str(ckpt)], resolution=24)
    pages = write_pages([mesh], root, tmp_path / "pages", opts)
    assert [p.name for p in pages] == ["torus.html"]
    page = payload(pages[0])
    assert page["prefixes"][-1]["bytes"] == len(codec.encode(mesh, model=str(ckpt)))
    assert page["original"]["bytes"] == mesh.stat().st_size
