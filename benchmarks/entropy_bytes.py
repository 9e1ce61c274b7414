"""Bytes of the range coder (.vat coder 2) against raw bit-packing and zstd on identical tokens, with timings.

PYTHONPATH=. python benchmarks/entropy_bytes.py <corpus>/katorlegaz --model CKPT_WITH_TABLES \
    --out benchmarks/results/entropy-bytes

Every mesh is encoded once (the neural encoder runs once per mesh); its indices are then written with each coder
at every prefix of the scales, so all coders code the same tokens. Writes OUT/rows.csv (one row per mesh and
prefix: file and payload bytes per coder), OUT/scales.csv (coded bytes per scale), OUT/summary.json and
OUT/summary.csv (means per prefix, savings, the >= 10% goal, coding and decoding times of the range coder).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from vatcodec import codec
from vatcodec.codec import bitstream as bs
from vatcodec.errors import VatError
from vatcodec.geometry.mesh_io import SUPPORTED_SUFFIXES

CODERS = ("raw", "zstd", "range")


def find_meshes(inputs: list[str]) -> list[Path]:
    """Files as given, and every mesh file under each directory (sorted)."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            )
        else:
            out.append(item)
    return out


def _best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def measure(path: Path, net, repeat: int = 3) -> tuple[list[dict], dict]:
    """Rows per prefix for one mesh, and its per-scale bytes and full-file timings."""
    raw = codec.encode(path, model=net, coder="raw")
    tokens = bs.unpack(raw)
    tables = net.entropy_freq_SK
    rows = []
    for n in range(1, tokens.num_scales + 1):
        row = {"mesh": str(path), "scales": n, "tokens": sum(tokens.schedule[:n])}
        for c in CODERS:
            data = codec.recode(raw, model=net, coder=c, scales=n)
            back = bs.unpack(data, tables=tables)
            if not all(np.array_equal(a, b) for a, b in zip(back.indices, tokens.indices[:n], strict=True)):
                raise AssertionError(f"{path}: {c} changed the tokens at prefix {n}")
            row[f"{c}_file"], row[f"{c}_payload"] = len(data), bs.header_info(data)["payload_bytes"]
        rows.append(row)
    # Coding times of the whole file: the payload coders only, no model and no mesh work.
    full = bs.unpack(codec.recode(raw, model=net, coder="range"), tables=tables)
    per_file = {"mesh": str(path), "scale_bytes": bs.header_info(bs.pack(full, tables=tables))["scale_bytes"]}
    for c in CODERS:
        vat = dataclasses.replace(full, coder=c)
        data = bs.pack(vat, tables=tables)
        per_file[f"{c}_encode_ms"] = _best_ms(lambda vat=vat: bs.pack(vat, tables=tables), repeat)
        per_file[f"{c}_decode_ms"] = _best_ms(lambda data=data: bs.unpack(data, tables=tables), repeat)
    return rows, per_file


def summarize(rows: list[dict], files: list[dict], schedule: tuple[int, ...], index_bits: int) -> dict:
    """Means per prefix and per scale, savings of range against raw and zstd, and the issue's goals."""
    prefixes = []
    for n in sorted({r["scales"] for r in rows}):
        sel = [r for r in rows if r["scales"] == n]
        mean = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if k.endswith(("_file", "_payload"))}
        payload_saving = [1 - r["range_payload"] / r["raw_payload"] for r in sel]
        prefixes.append(
            {
                "scales": n,
                "meshes": len(sel),
                **{f"mean_{k}": round(v, 2) for k, v in mean.items()},
                "range_vs_raw_payload": round(1 - mean["range_payload"] / mean["raw_payload"], 4),
                "range_vs_raw_file": round(1 - mean["range_file"] / mean["raw_file"], 4),
                "range_vs_zstd_payload": round(1 - mean["range_payload"] / mean["zstd_payload"], 4),
                "range_vs_zstd_file": round(1 - mean["range_file"] / mean["zstd_file"], 4),
                "min_range_vs_raw_payload": round(min(payload_saving), 4),
                "share_meshes_10pct_below_raw_payload": round(
                    float(np.mean(np.array(payload_saving) >= 0.1)), 4
                ),
            }
        )
    scale_bytes = np.array([f["scale_bytes"] for f in files], dtype=np.float64)
    per_scale = [
        {
            "scale": s,
            "tokens": n,
            "raw_bytes": n * index_bits / 8,
            "mean_range_bytes": round(float(scale_bytes[:, s].mean()), 2),
            "range_vs_raw": round(1 - float(scale_bytes[:, s].mean()) / (n * index_bits / 8), 4),
        }
        for s, n in enumerate(schedule)
    ]
    timing = {
        f"{c}_{d}_ms_{stat}": round(float(fn([f[f"{c}_{d}_ms"] for f in files])), 3)
        for c in CODERS
        for d in ("encode", "decode")
        for stat, fn in (("mean", np.mean), ("max", np.max))
    }
    coding = [f["range_encode_ms"] + f["range_decode_ms"] for f in files]
    return {
        "meshes": len(files),
        "prefixes": prefixes,
        "per_scale": per_scale,
        "timing": timing,
        "goal_10pct_below_raw_payload_every_prefix": all(p["range_vs_raw_payload"] >= 0.1 for p in prefixes),
        "goal_10pct_below_raw_file_every_prefix": all(p["range_vs_raw_file"] >= 0.1 for p in prefixes),
        "goal_range_coding_under_50ms_every_file": max(coding) <= 50.0,
    }


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="mesh files or folders of meshes")
    p.add_argument("--model", required=True, help="checkpoint with entropy tables (training.token_stats)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--repeat", type=int, default=3, help="timing repetitions (the best is kept)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the neural encoder")
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    net = codec.get_model(a.model)
    if net.entropy_freq_SK is None:
        print(
            f"error: {a.model} has no entropy tables; add them with python -m training.token_stats",
            file=sys.stderr,
        )
        return 2
    rows, files, failed = [], [], []
    for path in find_meshes(a.inputs):
        try:
            mesh_rows, per_file = measure(path, net, a.repeat)
        except VatError as exc:
            failed.append({"mesh": str(path), "error": " ".join(str(exc).split())})
            continue
        rows += mesh_rows
        files.append(per_file)
        print(f"{path}: raw {mesh_rows[-1]['raw_file']} B, range {mesh_rows[-1]['range_file']} B", flush=True)
    if not files:
        print("error: no mesh could be encoded", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, files, tuple(net.cfg.schedule), bs.index_bits_for(net.cfg.codebook_size))
    summary.update(model=str(a.model), range_model_id=net.entropy_id.hex(), failed=failed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _write_csv(out / "summary.csv", summary["prefixes"])
    _write_csv(out / "rows.csv", rows)
    _write_csv(out / "scales.csv", [{"mesh": f["mesh"], **dict(enumerate(f["scale_bytes"]))} for f in files])
    print(
        json.dumps({k: summary[k] for k in summary if k.startswith("goal")} | {"timing": summary["timing"]})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
