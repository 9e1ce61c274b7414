"""`vatcodec view`: one self-contained HTML page with the decode of every scale prefix of a .vat file.

The page inlines three.js (`assets/`, pinned, MIT) and every prefix's mesh as base64 float32 positions and uint32
indices, so it opens from file:// with no server and no network. A slider (and the arrow keys) steps through the
prefixes; the label gives each prefix's file size (the file cut to that many scales, as `vatcodec encode --scales`
writes it), the compression ratio against the original mesh file and, with an original, the F-score.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).parent / "assets"
THREE_JS = ASSETS / "three-0.160.0.module.min.js"
TEMPLATE = ASSETS / "viewer.html"
DEFAULT_FACES = 50_000
DEFAULT_RESOLUTION = 128


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


QUANT_LO, QUANT_HI = -0.55, 0.55  # positions are uint16 steps over this range of the unit cube (1.7e-5 apart)


def _entry(vertices_N3: np.ndarray, faces_F3: np.ndarray, norm) -> dict:
    unit_N3 = norm.to_unit(vertices_N3)  # both meshes in the file's unit cube: one camera for both
    q_N3 = np.rint((np.clip(unit_N3, QUANT_LO, QUANT_HI) - QUANT_LO) / (QUANT_HI - QUANT_LO) * 65535)
    return {"positions": _b64(q_N3.astype("<u2")), "indices": _b64(faces_F3.astype("<u4"))}


def page_data(
    data: bytes,
    *,
    original: str | os.PathLike | None = None,
    resolution: int = DEFAULT_RESOLUTION,
    faces: int = DEFAULT_FACES,
    model=None,
    progress=None,
) -> dict:
    """Everything the page shows, as JSON-ready data (the HTML is `render_page`).

    Raises:
        BitstreamError, VatError, MeshError: a corrupt file, another model's file, an unreadable original.
    """
    from vatcodec.codec.bitstream import header_info
    from vatcodec.codec.decoding import check_decode_options, decimate, decode_arrays
    from vatcodec.codec.models import model_for_file
    from vatcodec.codec.packing import recode
    from vatcodec.errors import EmptyShapeError
    from vatcodec.geometry.mesh_io import Normalization

    check_decode_options(resolution, None, faces)
    info = header_info(data)  # a corrupt file fails here, before anything is loaded
    net = model_for_file(info, model)
    norm = Normalization(center=tuple(info["center"]), scale=info["scale"])
    ref = None
    if original is not None:
        from vatcodec.geometry.mesh_io import load_mesh, normalize_mesh

        ref = load_mesh(original)  # an unreadable original fails before the decodes
        ref_unit, ref_norm = normalize_mesh(ref)
        original_bytes = Path(original).stat().st_size
    n_total = info["scales_present"]
    out = {
        "scales_total": n_total, "coder": info["coder"], "model_id": info["model_id"], "prefixes": [],
        "quant": [QUANT_LO, QUANT_HI],
    }  # fmt: skip
    if ref is not None:
        v, f = decimate(np.asarray(ref.vertices), np.asarray(ref.faces), faces)
        out["original"] = {**_entry(v, f, norm), "bytes": original_bytes, "faces": int(len(f))}
    for n in range(1, n_total + 1):
        if progress is not None:
            progress((n - 1) / n_total, f"decoding {n} of {n_total} scales")
        prefix = data if n == n_total else recode(data, model=net, coder=info["coder"], scales=n)
        row = {"scales": n, "bytes": len(prefix), "fscore": None, "faces": 0}
        if ref is not None:
            row["ratio"] = round(original_bytes / len(prefix))
        try:
            v, f = decode_arrays(prefix, model=net, resolution=resolution)
        except EmptyShapeError:
            v = f = None
        if v is not None:
            if ref is not None:
                import trimesh

                from vatcodec.geometry.metrics import decoded_surface_metrics

                pred = trimesh.Trimesh(v, f, process=False)
                row["fscore"] = round(float(decoded_surface_metrics(pred, ref_unit, ref_norm)["fscore"]), 4)
            v, f = decimate(v, f, faces)
            row.update(_entry(v, f, norm), faces=int(len(f)))
        out["prefixes"].append(row)
    return out


def render_page(page: dict, name: str) -> str:
    """The HTML text of a page for `page_data`'s output."""
    text = TEMPLATE.read_text(encoding="utf-8")
    three = THREE_JS.read_text(encoding="utf-8")
    payload = json.dumps(page, separators=(",", ":")).replace("</", "<\\/")  # never ends the script element
    return (
        text.replace("__TITLE__", html.escape(f"{name}: vatcodec view"))
        .replace("__NAME__", html.escape(name))
        .replace("__DATA__", payload)
        .replace("__THREE__", three)
    )


def write_view_page(
    vat_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    original: str | os.PathLike | None = None,
    resolution: int = DEFAULT_RESOLUTION,
    faces: int = DEFAULT_FACES,
    model=None,
    progress=None,
) -> dict:
    """Writes the page for a .vat file to `out` (atomically); returns sizes and timing.

    Raises:
        VatError (and its subclasses): as `page_data`; nothing is written then.
    """
    from vatcodec.fileio import atomic_write_bytes, read_input_bytes

    start = time.perf_counter()
    data = read_input_bytes(vat_path)
    page = page_data(
        data, original=original, resolution=resolution, faces=faces, model=model, progress=progress
    )
    name = "stdin" if str(vat_path) == "-" else Path(vat_path).name
    text = render_page(page, name).encode("utf-8")
    atomic_write_bytes(out, text)
    return {
        "page": str(out),
        "page_bytes": len(text),
        "seconds": time.perf_counter() - start,
        "prefixes": [{k: p[k] for k in ("scales", "bytes", "fscore", "faces")} for p in page["prefixes"]],
    }
