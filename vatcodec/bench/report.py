"""Benchmark reports from the cached rows: results.json (CompressAI-shaped), per-mesh and summary CSVs, a table.

A rate where a baseline has nothing that fits counts as F = 0 and no Chamfer (the shape is lost), so every
curve averages over the same meshes. "classical-best" is, per mesh and budget, the better of the baselines.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from vatcodec.fileio import atomic_write_bytes

PAPER_POINTS = [  # arXiv 2412.02202, on their own test set: (bytes, F-score at tau = 0.01)
    {"bytes": 3900, "fscore": 0.96, "label": "paper VAT, 3.9 KB"},
    {"bytes": 512, "fscore": 0.92, "label": "paper VAT, ~0.5 KB"},
]
CSV_FIELDS = (
    "mesh", "codec", "rate", "bytes", "fscore", "chamfer", "normal_consistency", "input_bytes", "ratio",
    "encode_s", "decode_s", "faces", "tokens", "peak_rss_mb", "params", "error",
)  # fmt: skip
DESCRIPTIONS = {
    "draco": "quadric decimation (fast-simplification) + Draco; face count and quantization bits searched per budget",
    "voxel": "watertight occupancy grid, bit-packed + zstd, marching cubes; highest resolution that fits",
    "classical-best": "per mesh and budget, the better F-score of draco and voxel",
}


def _mean(vals) -> float | None:
    v = [x for x in vals if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


def _curve(rows: list[dict], name: str, description: str) -> dict:
    rates = sorted({r["rate"] for r in rows})
    res: dict[str, list] = {k: [] for k in ("rate", "bytes", "fscore", "median_fscore", "chamfer",
                                            "normal_consistency", "ratio", "meshes", "missing")}  # fmt: skip
    for rate in rates:
        rs = [r for r in rows if r["rate"] == rate]
        res["rate"].append(rate)
        res["bytes"].append(_mean(r["bytes"] for r in rs))
        res["fscore"].append(_mean(r["fscore"] for r in rs))
        res["median_fscore"].append(float(np.median([r["fscore"] for r in rs])))
        res["chamfer"].append(_mean(r["chamfer"] for r in rs))
        res["normal_consistency"].append(_mean(r["normal_consistency"] for r in rs))
        res["ratio"].append(_mean(r.get("ratio") for r in rs))
        res["meshes"].append(len(rs))
        res["missing"].append(sum(r["bytes"] is None for r in rs))
    return {"name": name, "description": description, "results": res}


def _classical_best(rows: list[dict]) -> list[dict]:
    by_key: dict[tuple, dict] = {}
    for r in rows:
        if r["codec"] in DESCRIPTIONS and r["codec"] != "classical-best":
            k = (r["mesh"], r["rate"])
            if k not in by_key or r["fscore"] > by_key[k]["fscore"]:
                by_key[k] = r
    meshes_per_codec = {c: {r["mesh"] for r in rows if r["codec"] == c} for c in ("draco", "voxel")}
    both = meshes_per_codec["draco"] & meshes_per_codec["voxel"]
    return [{**r, "codec": "classical-best"} for k, r in by_key.items() if k[0] in both]


def _speed(rows: list[dict]) -> dict:
    rows = [r for r in rows if r["bytes"] is not None]  # a budget nothing fits wrote no file
    full = {}
    for r in rows:  # the longest prefix (or largest budget) of each mesh: the full file
        if r["mesh"] not in full or r["rate"] > full[r["mesh"]]["rate"]:
            full[r["mesh"]] = r
    enc = [r["encode_s"] for r in full.values()]
    dec = [r["decode_s"] for r in rows]
    return {
        "mean_encode_s": _mean(enc),
        "max_encode_s": max(enc) if enc else None,
        "mean_decode_s": _mean(dec),
        "max_decode_s": max(dec) if dec else None,
        "peak_rss_mb": max((r["peak_rss_mb"] for r in rows), default=None),
        "threads": rows[0].get("threads") if rows else None,
    }


def _occupancy(occ: list[dict]) -> dict:
    return {
        "meshes": len(occ),
        "accuracy": _mean(o["accuracy"] for o in occ),
        "iou": _mean(o["iou"] for o in occ),
        "near_surface_accuracy": _mean(o["near_surface_accuracy"] for o in occ),
        "cs_iou": _mean(o["cs_iou"] for o in occ),
        "prefix_iou": np.mean([o["prefix_iou"] for o in occ], axis=0).round(4).tolist() if occ else [],
    }


def build_results(records: list[dict], meta: dict) -> dict:
    """Aggregates cached job records into the results document (also the content of results.json)."""
    rows = [r for rec in records for r in rec["rows"]]
    codecs = sorted({r["codec"] for r in rows}, key=lambda c: (not c.startswith("vat"), c))
    curves = []
    for c in codecs:
        desc = DESCRIPTIONS.get(c) or (
            f"VAT tokenizer {c}: `vatcodec encode --max-bytes B` at each budget, rate = B"
            if "@bytes" in c
            else f"VAT tokenizer {c}: every scale prefix, rate = number of scales"
        )
        curves.append(_curve([r for r in rows if r["codec"] == c], c, desc))
    best = _classical_best(rows)
    if best:
        curves.append(_curve(best, "classical-best", DESCRIPTIONS["classical-best"]))
    vat = [c for c in codecs if c.startswith("vat")]
    return {
        "name": "vatcodec bench",
        "description": "rate-distortion on a folder of meshes: F-score at tau = 0.01 and Chamfer (dense "
        "point-to-surface, reference unit-cube frame), bytes per file",
        **meta,
        "codecs": curves,
        "speed": {c: _speed([r for r in rows if r["codec"] == c]) for c in vat},
        "occupancy": {
            c: _occupancy([x["occupancy"] for x in records if x["codec"] == c and x["occupancy"]])
            for c in vat
        },  # fmt: skip
        "errors": [
            {"mesh": x["mesh"], "codec": x["codec"], "error": x["error"]} for x in records if x["error"]
        ],
        "paper_points": PAPER_POINTS,
    }


def _csv_bytes(rows: list[dict], fields) -> bytes:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def write_reports(records: list[dict], out: Path, meta: dict) -> dict:
    """Writes results.json, one CompressAI-style JSON per codec, per_mesh.csv and summary.csv; returns results."""
    results = build_results(records, meta)
    atomic_write_bytes(out / "results.json", (json.dumps(results, indent=1) + "\n").encode())
    (out / "compressai").mkdir(exist_ok=True)
    for c in results["codecs"]:
        atomic_write_bytes(
            out / "compressai" / f"{c['name'].replace(':', '-')}.json", json.dumps(c, indent=1).encode()
        )
    rows = sorted(
        (r for rec in records for r in rec["rows"]), key=lambda r: (r["mesh"], r["codec"], r["rate"])
    )
    atomic_write_bytes(out / "per_mesh.csv", _csv_bytes(rows, CSV_FIELDS))
    summary = [
        {"codec": c["name"], **{k: v[i] for k, v in c["results"].items()}}
        for c in results["codecs"]
        for i in range(len(c["results"]["rate"]))
    ]
    if summary:
        atomic_write_bytes(out / "summary.csv", _csv_bytes(summary, list(summary[0])))
    return results


def print_table(results: dict, console) -> None:
    """The summary as a rich table: one row per codec and rate."""
    from rich.table import Table

    t = Table(title=f"rate-distortion on {results.get('meshes', '?')} meshes (F at tau = 0.01)")
    for col in ("codec", "rate", "mean bytes", "mean F", "median F", "mean Chamfer", "lost"):
        t.add_column(col, justify="left" if col == "codec" else "right")
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for c in results["codecs"]:
        r = c["results"]
        for i in range(len(r["rate"])):
            t.add_row(c["name"], str(r["rate"][i]), fmt(r["bytes"][i], ".0f"), fmt(r["fscore"][i], ".3f"),
                      fmt(r["median_fscore"][i], ".3f"), fmt(r["chamfer"][i], ".4f"),
                      f"{r['missing'][i]}/{r['meshes'][i]}")  # fmt: skip
    console.print(t)
    for c, s in results.get("speed", {}).items():
        console.print(
            f"{c}: encode {fmt(s['mean_encode_s'], '.2f')} s (max {fmt(s['max_encode_s'], '.2f')}), decode "
            f"{fmt(s['mean_decode_s'], '.2f')} s (max {fmt(s['max_decode_s'], '.2f')}), peak "
            f"{fmt(s['peak_rss_mb'], '.0f')} MB, {s['threads']} threads"
        )
    for c, o in results.get("occupancy", {}).items():
        if o["meshes"]:
            console.print(
                f"{c} tokenizer: Acc {o['accuracy']:.3f} IoU {o['iou']:.3f} NSA {o['near_surface_accuracy']:.3f} "
                f"CS-IoU {o['cs_iou']:.3f} over {o['meshes']} meshes"
            )
    for e in results.get("errors", []):
        console.print(f"[red]failed[/red] {e['mesh']} ({e['codec']}): {e['error']}")


def markdown(results: dict) -> str:
    """The summary as Markdown tables (for the README): rate-distortion, speed, tokenizer quality."""
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["| codec | rate | mean bytes | mean F | median F | mean Chamfer | mean NC | compression | lost |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in results["codecs"]:
        r = c["results"]
        for i in range(len(r["rate"])):
            lines.append(
                f"| {c['name']} | {r['rate'][i]} | {f(r['bytes'][i], '.0f')} | {f(r['fscore'][i], '.3f')} | "
                f"{f(r['median_fscore'][i], '.3f')} | {f(r['chamfer'][i], '.4f')} | "
                f"{f(r['normal_consistency'][i], '.3f')} | {f(r['ratio'][i], '.0f')}x | "
                f"{r['missing'][i]}/{r['meshes'][i]} |"
            )
    for c, s in results.get("speed", {}).items():
        speed = (
            f"{c}: encode {f(s['mean_encode_s'], '.2f')} s mean ({f(s['max_encode_s'], '.2f')} max), decode "
            f"{f(s['mean_decode_s'], '.2f')} s mean ({f(s['max_decode_s'], '.2f')} max) per file at the run's "
            f"resolution, peak RSS {f(s['peak_rss_mb'], '.0f')} MB per worker, {s['threads']} torch threads."
        )
        lines += ["", speed]
    for c, o in results.get("occupancy", {}).items():
        if o["meshes"]:
            occ = (
                f"{c} tokenizer ({o['meshes']} meshes): Accuracy {o['accuracy']:.3f}, IoU {o['iou']:.3f}, "
                f"Near-Surface Accuracy {o['near_surface_accuracy']:.3f}, CS-IoU {o['cs_iou']:.3f}; "
                "IoU by prefix " + " ".join(f"{x:.2f}" for x in o["prefix_iou"])
            )
            lines += ["", occ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
